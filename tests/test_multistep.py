"""jaxgan.multistep.train_steps: n iterations in one call equal n train_step calls."""

import dataclasses
import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan.multistep import train_steps
from tests.support import tiny_config, tiny_gan

BATCH, STEPS = 4, 3




def real_batches(shape, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1, 1, shape).astype(np.float32))


def assert_trees_close(a, b):
    """Float-tolerance equality. Adam moves each parameter by about the learning rate (1e-3)
    per update; XLA may order the float arithmetic of the loop body differently, which Adam's
    normalization can amplify for parameters with tiny gradients, so the absolute tolerance is
    1% of one update: any other key or minibatch would differ by whole updates."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def sequential(gan, state, reals):
    step = jax.jit(functools.partial(jaxgan.train_step, gan))
    metrics = []
    for minibatches in reals:
        state, m = step(state, minibatches)
        metrics.append(m)
    return state, jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)


@pytest.mark.parametrize("unroll, d_steps", [(1, 2), (True, 1)])
def test_train_steps_equals_sequential_train_step_calls(unroll, d_steps, key):
    gan = tiny_gan(d_steps=d_steps, ema_decay=0.9)
    reals = real_batches((STEPS, d_steps, BATCH, 28, 28, 1))
    state = gan.init(key)
    want_state, want_metrics = sequential(gan, state, reals)
    fused = jax.jit(functools.partial(train_steps, gan, unroll=unroll), donate_argnums=0)
    got_state, got_metrics = fused(gan.init(key), reals)
    assert int(got_state.step) == STEPS
    assert_trees_close(got_state.replace(key=None), want_state.replace(key=None))
    assert set(got_metrics) == {"d_loss", "d_real", "d_fake", "g_loss"}
    assert all(m.shape == (STEPS,) for m in got_metrics.values())
    assert_trees_close(got_metrics, want_metrics)
    # The iterations differ from each other: each drew its own noise.
    assert len(set(np.asarray(got_metrics["g_loss"]).tolist())) == STEPS


def test_train_steps_continues_a_run(key):
    """Two calls of n steps = one of 2n: the step counter drives the keys, not the call."""
    gan = tiny_gan()
    reals = real_batches((2 * STEPS, BATCH, 28, 28, 1))
    fused = jax.jit(functools.partial(train_steps, gan))
    state, first = fused(gan.init(key), reals[:STEPS])
    state, second = fused(state, reals[STEPS:])
    whole_state, whole = fused(gan.init(key), reals)
    assert_trees_close(state.replace(key=None), whole_state.replace(key=None))
    assert_trees_close(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second), whole)


def test_mlp_pair_train_steps_equals_sequential(key):
    g, d = jaxgan.make_models("mlp")
    gan = jaxgan.GAN(g, d, optax.adam(2e-4, b1=0.5), optax.adam(2e-4, b1=0.5))
    reals = real_batches((2, BATCH, 28, 28, 1)) * 0.5 + 0.5
    want_state, want_metrics = sequential(gan, gan.init(key), reals)
    got_state, got_metrics = jax.jit(functools.partial(train_steps, gan, unroll=2))(
        gan.init(key), reals)
    assert_trees_close(got_state.replace(key=None), want_state.replace(key=None))
    assert_trees_close(got_metrics, want_metrics)


def test_train_steps_rejects_minibatches_of_the_wrong_rank(key):
    gan = tiny_gan()
    with pytest.raises(ValueError, match=r"\[n, d_steps, batch, \*data_shape\]"):
        train_steps(gan, gan.init(key), jnp.zeros((BATCH, 28, 28, 1)))


def test_train_steps_compiles_once(key):
    gan = tiny_gan()
    traced = chex.assert_max_traces(lambda state, real: train_steps(gan, state, real), n=1)
    fused = jax.jit(traced, donate_argnums=0)
    state = gan.init(key)
    for seed in range(3):  # a second trace (a recompilation) would raise
        state, _ = fused(state, real_batches((2, BATCH, 28, 28, 1), seed=seed))


def test_trainer_with_steps_per_call_matches_one_step_per_call(tmp_path):
    from jaxgan import trainer
    from jaxgan.summary import read_metrics

    # 7 steps, 3 per call: two calls of 3, then one single step (the remainder)
    base = tiny_config(steps=7, log_every=3, sample_every=3, checkpoint_every=3)
    calls = []
    one = trainer.train(base, tmp_path / "one", progress=False)
    three = trainer.train(dataclasses.replace(base, steps_per_call=3), tmp_path / "three",
                          progress=False, on_step=calls.append)
    assert calls == [3, 6, 7]
    assert one.step == three.step == 7
    def leaves(state):
        return jax.tree.leaves(state.replace(key=jax.random.key_data(state.key)))

    for a, b in zip(leaves(one.state), leaves(three.state)):
        if jnp.issubdtype(a.dtype, jnp.floating):  # float rounding: not bitwise (multistep)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
        else:  # the step counts, optimizer counts and the key
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    logs = [read_metrics(tmp_path / name / "metrics.jsonl") for name in ("one", "three")]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]] == [3, 6, 7]
    for a, b in zip(*logs):
        for name in ("d_loss", "g_loss", "d_real", "d_fake"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4)
    # the periodic actions kept their cadence: checkpoints 3, 6, 7; grids 3, 6, 7
    assert sorted(int(d) for d in os.listdir(tmp_path / "three" / "checkpoints")) == [3, 6, 7]
    assert sorted(os.listdir(tmp_path / "three" / "samples")) == sorted(
        os.listdir(tmp_path / "one" / "samples"))


def test_steps_per_call_must_divide_the_periodic_actions():
    from jaxgan.errors import ConfigError

    with pytest.raises(ConfigError, match="log_every 2 is not a multiple of steps_per_call 4"):
        tiny_config(steps_per_call=4, log_every=2).validate()
