"""Per-backend choices: the DCGAN pair's phase layers on the CPU only, and the XLA compiler
options of jaxgan's compiled steps (``jaxgan.compile.compiler_options``)."""

import functools
import re
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


def _state_copies(hlo: str) -> int:
    """float32 copies in the entry computation of a compiled step."""
    entry = hlo[hlo.index("ENTRY"):]
    return len(re.findall(r"= f32\[[^\n]* copy\(", entry))


def test_region_analysis_drops_the_donated_state_s_copies_with_the_same_results():
    """With the state donated, XLA's default copy insertion copies parameters and Adam
    moments that an in-place update still reads; the compiled step with jaxgan's options
    makes none of those copies and computes the same states bit for bit."""
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
    states, copies = [], []
    for opts in (options, without):
        step = jax.jit(functools.partial(jaxgan.train_step, gan), donate_argnums=0,
                       compiler_options=opts)
        state = gan.init(jax.random.key(0))
        copies.append(_state_copies(step.lower(state, real).compile().as_text()))
        for _ in range(3):
            state, _ = step(state, real)
        states.append(state)
    assert copies[0] == 0 < copies[1]  # the premise: without it, XLA copies the state

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


def _ynn_convolutions(hlo: str) -> int:
    """Convolutions inside computations that a YNNPACK fusion calls."""
    called = set(re.findall(r"calls=%([\w.\-]+)[^\n]*\"__ynn", hlo))
    count, computation = 0, None
    for line in hlo.splitlines():
        header = re.match(r"^\s*%?([\w.\-]+)\s*\(.*\{\s*$", line)
        if header and "=" not in line.split("(")[0]:
            computation = header.group(1)
        elif computation in called and " convolution(" in line:
            count += 1
    return count


def test_compiled_step_keeps_convolutions_off_the_library_and_the_same_losses():
    g, d = jaxgan.make_models("dcgan")  # widths at which jaxlib hands convolutions to YNNPACK
    gan = jaxgan.GAN(g, d, optax.adam(1e-3), optax.adam(1e-3))
    state = gan.init(jax.random.key(0))
    real = jax.random.uniform(jax.random.key(1), (1, 4, 28, 28, 1), minval=-1, maxval=1)
    step = functools.partial(jaxgan.train_step, gan)
    plain = jax.jit(step).lower(state, real).compile()
    options = compiler_options()
    ours = jax.jit(step, compiler_options=options).lower(state, real).compile()
    # jaxlib's default: YNNPACK library fusions for the convolutions too; ours: for single
    # dots only, so no convolution among them.
    plain_text, ours_text = plain.as_text(), ours.as_text()
    assert _ynn_convolutions(plain_text) > 0 and _ynn_convolutions(ours_text) == 0
    (_, m1), (_, m2) = plain(state, real), ours(state, real)
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(m1[key], m2[key], rtol=1e-5)
