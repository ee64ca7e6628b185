"""What many tests share: the checkout's root and the tiny GANs and training configs they
train, the real code paths at shapes that compile in seconds (``from tests.support import
tiny_config``)."""

import glob
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgan
from jaxgan import models
from jaxgan.config import TrainConfig

# The checkout: the working directory of the commands the tests run.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides: Any) -> TrainConfig:
    """The default ``TrainConfig`` shrunk for tests: a tiny DCGAN (widths (8, 4, 4) /
    (4, 8), z of 16) on the embedded digits, batches of 8, 6 steps, logs, grids and
    checkpoints every few steps; ``overrides`` on top."""
    values = dict(
        arch="dcgan", g_widths=(8, 4, 4), d_widths=(4, 8), batch_size=8, steps=6,
        log_every=2, sample_every=3, checkpoint_every=3, data="embedded", latent_dim=16,
    )
    return TrainConfig(**{**values, **overrides})


def tiny_gan(arch: str = "dcgan", *, dtype=jnp.float32, **kwargs) -> jaxgan.GAN:
    """``arch="dcgan"``: DCGAN widths (8, 4, 4) / (4, 8), batch normalization in G;
    ``"mlp"``: a 32-32 MLP generator and a 16 x 3 maxout D (dropout). Adam(1e-3, b1=0.5)
    for both players unless ``kwargs`` give optimizers; other ``kwargs`` go to ``GAN``."""
    if arch == "dcgan":
        g, d = jaxgan.make_models("dcgan", dtype=dtype, g_widths=(8, 4, 4), d_widths=(4, 8))
    else:
        g = models.MLPGenerator(hidden=(32, 32), dtype=dtype)
        d = models.MaxoutDiscriminator(units=16, pieces=3, dtype=dtype)
    adam = optax.adam(1e-3, b1=0.5)
    return jaxgan.GAN(g, d, **{"g_optimizer": adam, "d_optimizer": adam, **kwargs})


# tiny_config's run as the command line's flags (12 steps, checkpoints every 4).
TINY_FLAGS = [
    "--g-widths", "8,4,4", "--d-widths", "4,8", "--batch-size", "8", "--data", "embedded",
    "--latent-dim", "16", "--steps", "12", "--log-every", "2", "--sample-every", "3",
    "--checkpoint-every", "4", "--no-progress",
]


# The fields of a GANState, each compared leaf by leaf by assert_same_state.
STATE_FIELDS = ("g_params", "d_params", "g_opt_state", "d_opt_state", "g_ema_params",
                "g_batch_stats", "key", "step")


def assert_same_state(a, b):
    """Two ``GANState``s are bit-identical, field by field."""
    for field in STATE_FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        if field == "key":
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        xs, ys = jax.tree.leaves(x), jax.tree.leaves(y)
        assert len(xs) == len(ys), field
        assert all(np.array_equal(u, v) for u, v in zip(xs, ys)), field


def listing(directory):
    """Every file under ``directory`` with its size and modification time."""
    return {
        os.path.relpath(path, directory): (os.path.getsize(path), os.path.getmtime(path))
        for path in glob.glob(os.path.join(directory, "**"), recursive=True)
        if os.path.isfile(path)
    }


def saved_steps(workdir):
    """The names of the checkpoints a workdir holds, sorted."""
    return sorted(os.listdir(os.path.join(workdir, "checkpoints")))
