"""Mixed precision: bfloat16 computation with float32 parameters tracks float32 training.

bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 ~ 0.2% per operation), so a
bfloat16 step is not the float32 step to float32 tolerance. What it must do: stay finite,
keep parameters, optimizer states and losses in float32, and move the parameters the way
float32 does. Measured on the tiny models below after 5 steps:

* SGD: relative L2 error of the parameter deltas 0.013-0.031 (tolerance 0.1); losses within
  0.002 (tolerance 0.01).
* Adam: its first steps are about lr * sign(gradient), and rounding flips the sign of tiny
  gradient entries, so the relative error is larger (0.04-0.29); the deltas' cosine
  similarity is 0.96-0.999 (tolerance 0.9).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import trainer
from jaxgan.summary import read_metrics
from tests.support import tiny_config, tiny_gan

STEPS = 5


def precision_gan(arch, dtype, optimizer):
    """dcgan: batch normalization in G; mlp: dropout and maxout in D."""
    return tiny_gan(arch, dtype=dtype, g_optimizer=optimizer, d_optimizer=optimizer,
                    latent_dim=16, ema_decay=0.9)


def train(arch, dtype, optimizer):
    gan = precision_gan(arch, dtype, optimizer)
    step = jax.jit(functools.partial(jaxgan.train_step, gan))
    initial = state = gan.init(jax.random.key(0))
    low, high = gan.output_range
    losses = []
    for i in range(STEPS):
        batch = np.random.default_rng(i).uniform(low, high, (1, 16, 28, 28, 1))
        state, metrics = step(state, batch.astype(np.float32))
        losses.append(metrics)
    return initial, state, losses


def deltas(initial, final):
    """All parameter changes (G and D) as one float64 vector."""
    pairs = zip(jax.tree.leaves((final.g_params, final.d_params)),
                jax.tree.leaves((initial.g_params, initial.d_params)))
    return np.concatenate([np.ravel(np.asarray(a, np.float64) - np.asarray(b)) for a, b in pairs])


def compare(arch, optimizer):
    initial, full, full_losses = train(arch, jnp.float32, optimizer)
    initial_bf16, half, half_losses = train(arch, jnp.bfloat16, optimizer)
    # Same float32 initialization: the dtype changes the computation only.
    np.testing.assert_array_equal(deltas(initial, initial_bf16), 0.0)
    for leaf in jax.tree.leaves((half.g_params, half.d_params, half.g_opt_state,
                                 half.d_opt_state, half.g_ema_params, half_losses)):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
        assert np.all(np.isfinite(leaf))
    d_full, d_half = deltas(initial, full), deltas(initial, half)
    relative = np.linalg.norm(d_half - d_full) / np.linalg.norm(d_full)
    cosine = d_half @ d_full / (np.linalg.norm(d_half) * np.linalg.norm(d_full))
    loss_diff = max(abs(float(a[k]) - float(b[k])) for a, b in zip(full_losses, half_losses) for k in a)
    return relative, cosine, loss_diff


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_bfloat16_sgd_steps_track_float32(arch):
    relative, _, loss_diff = compare(arch, optax.sgd(0.05))
    assert relative < 0.1
    assert loss_diff < 0.01
    assert relative > 1e-4  # the computation really ran in bfloat16


def test_bfloat16_adam_steps_point_where_float32_steps_do():
    _, cosine, loss_diff = compare("dcgan", optax.adam(1e-3, b1=0.5))
    assert cosine > 0.9
    assert loss_diff < 0.01


def test_bfloat16_training_run_end_to_end(tmp_path):
    """``--dtype bfloat16`` through the trainer: finite losses close to float32's, a sample
    grid, and float32 parameters in the checkpoint (which restores)."""
    trainer.train(tiny_config(dtype="bfloat16"), tmp_path / "bf16", progress=False)
    trainer.train(tiny_config(), tmp_path / "f32", progress=False)
    records = read_metrics(tmp_path / "bf16" / "metrics.jsonl")
    reference = read_metrics(tmp_path / "f32" / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 3, 4, 6]
    for record, ref in zip(records, reference):
        for name in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert np.isfinite(record[name]) and abs(record[name] - ref[name]) < 0.02, name
    assert (tmp_path / "bf16" / "samples" / "latest.png").exists()
    config, gan, state, step = trainer.load_trained(tmp_path / "bf16")
    assert config.dtype == "bfloat16" and step == 6
    assert {x.dtype for x in jax.tree.leaves((state.g_params, state.d_params))} == {np.dtype(np.float32)}
    # The tiny run on labelled digits is conditional (auto): one label per image.
    images = gan.generate(state.g_params, gan.sample_noise(jax.random.key(0), 4),
                          labels=jnp.arange(4), batch_stats=state.g_batch_stats)
    assert images.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(images, np.float32)))
