"""Per-backend choices: the DCGAN pair's phase layers on the CPU only, and the XLA compiler
options of jaxgan's compiled steps (``jaxgan.compile.compiler_options``)."""

import functools
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import models
from jaxgan.compile import compiler_options

SHAPE = (16, 16, 1)


def _custom_vjp_calls(fn, *args) -> int:
    """How many ``custom_vjp`` calls (the phase layers' hand-written gradients) ``fn`` traces."""
    return str(jax.make_jaxpr(fn)(*args)).count("custom_vjp_call")


def _pair(cpu_layers):
    g = models.DCGANGenerator(widths=(8, 4), image_shape=SHAPE, cpu_layers=cpu_layers)
    d = models.DCGANDiscriminator(widths=(4, 8, 8), cpu_layers=cpu_layers)
    return g, d


def _g_and_d_calls(cpu_layers):
    g, d = _pair(cpu_layers)
    z, x = jnp.ones((2, 100)), jnp.ones((2,) + SHAPE)
    g_vars = g.init(jax.random.key(0), z)
    d_vars = d.init(jax.random.key(0), x, train=True)
    g_calls = _custom_vjp_calls(lambda z: g.apply(g_vars, z, mutable=["batch_stats"],
                                                  train=True)[0], z)
    d_calls = _custom_vjp_calls(lambda x: d.apply(d_vars, x, train=True), x)
    return g_calls, d_calls


def test_phase_layers_are_chosen_by_backend():
    # G (16x16: a 4x4 grid, two stride-2 layers): both by phases, the last one's bias by
    # jaxgan.layers.add_bias, and its two batch normalizations by jaxgan.layers.batch_norm.
    # D: three stride-2 convolutions, the first always Flax's own, the other two by phases,
    # each with add_bias.
    assert _g_and_d_calls(True) == (5, 4)
    assert _g_and_d_calls(False) == (0, 0)
    assert jax.default_backend() == "cpu"
    assert _g_and_d_calls(None) == (5, 4)  # auto on the CPU: jaxgan's layers
    with mock.patch.object(jax, "default_backend", return_value="gpu"):
        assert _g_and_d_calls(None) == (0, 0)  # auto elsewhere: Flax's native layers


def test_phase_and_native_pairs_are_the_same_function():
    z, x = jax.random.normal(jax.random.key(3), (3, 100)), jax.random.normal(
        jax.random.key(4), (3,) + SHAPE)
    results = []
    for cpu_layers in (True, False):
        g, d = _pair(cpu_layers)
        g_vars = g.init(jax.random.key(0), z)
        d_vars = d.init(jax.random.key(0), x, train=True)

        def loss(g_params, d_params, x):
            fake, _ = g.apply({**g_vars, "params": g_params}, z, train=True,
                              mutable=["batch_stats"])
            logits = d.apply({"params": d_params}, jnp.concatenate([x, fake]), train=True)
            return jnp.sum(jnp.sin(logits))

        value, grads = jax.value_and_grad(loss, argnums=(0, 1, 2))(
            g_vars["params"], d_vars["params"], x)
        results.append((g_vars, d_vars, value, grads))
    (g1, d1, v1, grads1), (g2, d2, v2, grads2) = results
    for a, b in zip(jax.tree.leaves((g1, d1)), jax.tree.leaves((g2, d2))):
        np.testing.assert_array_equal(a, b)  # the same parameter trees and draws
    assert jax.tree.structure(grads1) == jax.tree.structure(grads2)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads1), jax.tree.leaves(grads2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def test_compiler_options_per_backend():
    assert compiler_options("cpu") == {
        "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
        "xla_cpu_copy_insertion_use_region_analysis": True}
    assert compiler_options() == compiler_options("cpu")  # the default backend
    assert compiler_options("gpu") == {} and compiler_options("tpu") == {}
    options = compiler_options()
    options["x"] = "1"  # a new dict each call
    assert "x" not in compiler_options()


def test_region_analysis_leaves_the_donated_steps_states_bit_identical():
    """jaxgan's copy insertion option (what it saves: ``python -m benchmarks.config_steps``)
    changes where the donated state is copied, not what the step computes: three steps
    with and without it give the same states bit for bit."""
    mlp = jaxgan.GAN(*jaxgan.make_models("mlp"), optax.adam(2e-4, b1=0.5),
                     optax.adam(2e-4, b1=0.5))
    dcgan = jaxgan.GAN(*_pair(True), optax.adam(2e-4, b1=0.5), optax.adam(2e-4, b1=0.5),
                       data_shape=SHAPE)
    for gan in (mlp, dcgan):
        _check_region_analysis(gan)


def _check_region_analysis(gan):
    real = jax.random.uniform(jax.random.key(1), (8,) + tuple(gan.data_shape), minval=-1.0,
                              maxval=1.0)
    option = "xla_cpu_copy_insertion_use_region_analysis"
    options = compiler_options("cpu")
    assert options[option] is True
    without = {k: v for k, v in options.items() if k != option}
    states = []
    for opts in (options, without):
        step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                       compiler_options=opts)
        state = gan.init(jax.random.key(0))
        for _ in range(3):
            state, _ = step(state, real)
        states.append(state)

    def raw(x):  # a typed PRNG key compares by its data
        return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):
        np.testing.assert_array_equal(raw(a), raw(b))


def test_compiler_options_fall_back_when_jaxlib_refuses_them():
    bogus = {"xla_cpu_no_such_option_for_jaxgan": "1"}
    with pytest.raises(Exception):  # the premise: an unknown option fails the compilation
        jax.jit(lambda x: x + 1, compiler_options=bogus).lower(jnp.zeros(())).compile()
    jaxgan.compile._cpu_options_known.cache_clear()
    try:
        with mock.patch.object(jaxgan.compile, "CPU_OPTIONS", bogus):
            assert compiler_options("cpu") == {}
    finally:
        jaxgan.compile._cpu_options_known.cache_clear()
    assert compiler_options("cpu") != {}


def test_compiler_options_keep_the_dcgan_steps_losses():
    """jaxgan's CPU options (convolutions kept off YNNPACK's library fusions) compute the
    step jaxlib's defaults compute, to float rounding."""
    g, d = jaxgan.make_models("dcgan")  # widths at which jaxlib hands convolutions to YNNPACK
    gan = jaxgan.GAN(g, d, optax.adam(1e-3), optax.adam(1e-3))
    state = gan.init(jax.random.key(0))
    real = jax.random.uniform(jax.random.key(1), (1, 4, 28, 28, 1), minval=-1, maxval=1)
    step = functools.partial(jaxgan.train_step, gan)
    plain = jax.jit(step).lower(state, real).compile()
    ours = jax.jit(step, compiler_options=compiler_options()).lower(state, real).compile()
    (_, m1), (_, m2) = plain(state, real), ours(state, real)
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(m1[key], m2[key], rtol=1e-5)
