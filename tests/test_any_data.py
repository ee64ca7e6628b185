"""Any image data: the models adapt to the data's shape, and the one trainer trains, resumes
and samples on a 3-channel npz and on a folder of PNGs as it does on MNIST."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import models, trainer
from jaxgan.errors import ConfigError
from tests.support import ROOT, tiny_config



@pytest.mark.parametrize("shape,grid,upsamplings", [
    ((28, 28, 1), (7, 7), 2),
    ((32, 32, 3), (8, 8), 2),
    ((64, 64, 3), (8, 8), 3),
    ((64, 32, 1), (8, 4), 3),
    ((128, 128, 3), (8, 8), 4),
])
def test_dcgan_pair_draws_and_judges_the_data_shape(key, shape, grid, upsamplings):
    assert models.dcgan_grid(shape) == (grid, upsamplings)
    g, d = models.make_models("dcgan", g_widths=(8, 4, 4, 4), d_widths=(4, 8), image_shape=shape)
    z = jnp.zeros((2, 16))
    variables = g.init(key, z)
    images = g.apply(variables, z)
    assert images.shape == (2,) + shape
    # the projection: grid cells x w0 units; then u - 1 stride-2 layers and the output layer
    assert variables["params"]["Dense_0"]["kernel"].shape == (16, grid[0] * grid[1] * 8)
    logits = d.apply(d.init(key, images, train=False), images, train=False)
    assert logits.shape == (2,)


def test_28x28_generator_is_the_mnist_one(key):
    """image_shape's default is MNIST's: the same layers and parameters as before."""
    z = jax.random.normal(key, (3, 16))
    default = models.DCGANGenerator(widths=(8, 4, 4))
    explicit = models.DCGANGenerator(widths=(8, 4, 4), image_shape=(28, 28, 1))
    variables = default.init(key, z)
    assert jax.tree.structure(variables) == jax.tree.structure(explicit.init(key, z))
    np.testing.assert_array_equal(default.apply(variables, z), explicit.apply(variables, z))
    assert variables["params"]["Dense_0"]["kernel"].shape == (16, 7 * 7 * 8)


@pytest.mark.parametrize("shape,widths,needle", [
    ((30, 30, 1), (8, 4), "multiples of 4; 30x30 is not"),
    ((64, 64, 3), (8, 4), "needs at least 3 widths"),
    ((28, 28, 2), (8, 4), "C = 1 or 3"),
])
def test_shapes_the_dcgan_generator_cannot_draw_are_errors(key, shape, widths, needle):
    with pytest.raises(ValueError, match=needle):
        g, _ = models.make_models("dcgan", g_widths=widths, image_shape=shape)
        g.init(key, jnp.zeros((1, 16)))


def test_mlp_generator_draws_any_shape(key):
    g, d = models.make_models("mlp", image_shape=(5, 7, 3))
    variables = g.init(key, jnp.zeros((2, 100)))
    images = g.apply(variables, jnp.zeros((2, 100)))
    assert images.shape == (2, 5, 7, 3)
    assert variables["params"]["Dense_2"]["kernel"].shape == (1200, 105)
    params = d.init({"params": key, "dropout": key}, images, train=False)
    assert d.apply(params, images, train=False).shape == (2,)


@pytest.fixture
def color_npz(tmp_path):
    """32 images of 32x32x3: a red square whose position gives the label (4 classes)."""
    images = np.zeros((32, 32, 32, 3), np.uint8)
    labels = np.arange(32) % 4
    for i, label in enumerate(labels):
        top, left = 4 + 8 * (label // 2), 4 + 8 * (label % 2) + i % 4
        images[i, top : top + 8, left : left + 8, 0] = 255
    path = tmp_path / "squares.npz"
    np.savez(path, images=images, labels=labels)
    return path


def test_trainer_on_a_3_channel_npz_resumes_and_samples(tmp_path, color_npz):
    config = tiny_config(data=f"npz:{color_npz}", steps=4, checkpoint_every=2,
                              sample_every=2, log_every=2)
    workdir = tmp_path / "run"
    result = trainer.train(config, workdir, progress=False)
    assert result.gan.data_shape == (32, 32, 3)
    info = json.loads((workdir / "data.json").read_text())
    assert info["image_shape"] == [32, 32, 3] and info["num_examples"] == 32
    assert info["num_classes"] == 4 and info["source"].startswith("npz:")
    # Labelled data: the run is conditional (auto), its grid one class per row: 4 rows of 10.
    assert result.gan.num_classes == 4
    with Image.open(workdir / "samples" / "latest.png") as grid:
        assert grid.mode == "RGB" and grid.size == (2 * (10 * 34 + 2), 2 * (4 * 34 + 2))
    images = trainer.sample(workdir, 5, seed=1)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(images, trainer.sample(workdir, 5, seed=1))
    # resuming continues the same model from its checkpoint
    again = trainer.train(tiny_config(**{**config.to_json(), "steps": 6}), workdir,
                          progress=False)
    assert again.resumed_from == 4 and again.step == 6


def test_a_workdir_refuses_data_of_another_shape(tmp_path, color_npz):
    workdir = tmp_path / "run"
    trainer.train(tiny_config(data=f"npz:{color_npz}", steps=2, checkpoint_every=2,
                                   sample_every=2, log_every=2), workdir, progress=False)
    with pytest.raises(ConfigError, match=r"trained on images \[32, 32, 3\].*this data is "
                       r"\[28, 28, 1\]"):
        trainer.train(tiny_config(steps=4), workdir, progress=False)


def test_data_the_model_cannot_draw_is_a_config_error_and_leaves_no_workdir(tmp_path):
    np.savez(tmp_path / "odd.npz", images=np.zeros((16, 30, 30), np.uint8))
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match="arch: .*30x30 is not"):
        trainer.train(tiny_config(data=f"npz:{tmp_path / 'odd.npz'}"), workdir,
                      progress=False)
    assert not workdir.exists()


def test_command_line_trains_a_folder_of_pngs_and_samples_it(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("circles", "squares"):
        for i in range(8):
            image = (rng.uniform(size=(32, 32)) * 255).astype(np.uint8)
            os.makedirs(tmp_path / "photos" / label, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "photos" / label / f"{i}.png")
    workdir = tmp_path / "run"
    common = dict(cwd=ROOT, capture_output=True, text=True, timeout=300)
    flags = ["--data", f"folder:{tmp_path / 'photos'}", "--g-widths", "8,4,4", "--d-widths",
             "4,8", "--batch-size", "8", "--steps", "2", "--log-every", "1", "--sample-every",
             "2", "--checkpoint-every", "2", "--latent-dim", "16", "--no-progress"]
    train = subprocess.run([sys.executable, "-m", "experiments.mnist", *flags, "--workdir",
                            str(workdir)], **common)
    assert train.returncode == 0, train.stderr
    out = tmp_path / "s.npy"
    sample = subprocess.run([sys.executable, "-m", "experiments.mnist", "sample", "--workdir",
                             str(workdir), "--num", "3", "--out", str(out)], **common)
    assert sample.returncode == 0, sample.stderr
    assert np.load(out).shape == (3, 32, 32, 1)
    figures = subprocess.run([sys.executable, "-m", "experiments.mnist", "figures", "--workdir",
                              str(workdir), "--rows", "2", "--columns", "2", "--steps", "3"],
                             **common)
    assert figures.returncode == 0, figures.stderr
    with Image.open(workdir / "figures" / "figure2.png") as figure:
        assert figure.size == (2 * (3 * 34 + 2), 2 * (2 * 34 + 2))


def test_trainer_on_stacked_mnist(tmp_path):
    """Stacked MNIST trains through the same trainer: a 3-channel DCGAN at 28x28."""
    result = trainer.train(tiny_config(data="stacked:embedded", steps=2, checkpoint_every=2,
                                            sample_every=2, log_every=2), tmp_path, progress=False)
    assert result.gan.data_shape == (28, 28, 3)
    info = json.loads((tmp_path / "data.json").read_text())
    assert info["image_shape"] == [28, 28, 3] and info["num_classes"] == 1000
