"""jaxgan.layers: the same functions, gradients and parameters as Flax's layers, no zero terms."""

import itertools

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgan import layers

RTOL = 2e-5  # float32 summation order differs from XLA's single convolution

# (kernel_size, strides, padding, transpose_kernel, input spatial shape, in, out)
CONV_TRANSPOSE_CASES = [
    ((5, 5), (2, 2), "SAME", False, (7, 7), 3, 4),  # the DCGAN layer, odd input
    ((5, 5), (2, 2), "SAME", False, (4, 6), 2, 1),  # even input, one output channel
    ((4, 4), (2, 2), "SAME", False, (5, 4), 3, 2),  # even kernel
    ((3, 3), (2, 2), "VALID", False, (5, 5), 2, 3),
    ((2, 2), (2, 2), "SAME", False, (3, 3), 2, 2),  # kernel = stride: pure depth-to-space
    ((1, 1), (2, 2), "SAME", False, (3, 4), 2, 2),  # kernel < stride: phases with no taps
    ((3, 5), (3, 2), "SAME", False, (4, 5), 2, 3),  # different kernel and stride per axis
    ((6, 6), (3, 3), "VALID", True, (3, 4), 2, 3),  # transpose_kernel
    ((5, 5), (2, 1), "SAME", False, (5, 6), 3, 2),  # strided along one axis only
    ((4, 3), (2, 2), ((1, 2), (0, 3)), False, (5, 4), 2, 2),  # explicit padding
    ((5, 5), (2, 2), ((-1, 2), (2, -1)), False, (5, 5), 2, 2),  # negative: cropping
    ((5, 5), (1, 1), "SAME", False, (7, 7), 3, 4),  # stride 1: Flax's own code
    ((3,), (2,), "SAME", False, (9,), 2, 3),  # one spatial axis
    ((3, 3, 3), (2, 2, 2), "SAME", False, (3, 4, 3), 2, 2),  # three spatial axes
]

CONV_CASES = [
    ((5, 5), (2, 2), "SAME", (28, 28), 1, 4),  # the DCGAN discriminator's layers
    ((5, 5), (2, 2), "SAME", (14, 14), 3, 5),
    ((5, 5), (2, 2), "SAME", (7, 9), 2, 3),  # odd sizes
    ((4, 4), (2, 2), "VALID", (9, 8), 2, 2),  # trailing pixels that no window reads
    ((3, 2), (3, 2), ((2, 0), (1, 3)), (8, 7), 2, 3),  # explicit padding, strides 3 and 2
    ((3, 3), (1, 1), "SAME", (6, 6), 2, 3),  # stride 1: Flax's own code
    ((3,), (2,), "VALID", (10,), 2, 2),  # one spatial axis
]


def assert_same_layer(ours, reference, x):
    """Same parameter tree, same outputs, same gradients wrt the input and every parameter."""

    @jax.jit  # one compilation per case keeps the sweep fast
    def both(x):
        params = reference.init(jax.random.key(1), x)
        ours_params = ours.init(jax.random.key(1), x)
        shifted = jax.tree.map(lambda p: p + 0.1, params)  # nonzero biases too
        expected = reference.apply(shifted, x)
        cotangent = jax.random.normal(jax.random.key(2), expected.shape)

        def pullback(layer):  # gradients wrt every parameter and the input
            return jax.grad(lambda p, x: jnp.vdot(layer.apply(p, x), cotangent),
                            argnums=(0, 1))(shifted, x)

        return (params, ours_params, expected, ours.apply(shifted, x),
                pullback(reference), pullback(ours))

    params, ours_params, expected, got, want_grads, got_grads = both(x)
    # Same names, shapes, dtypes and initializers: the same draws.
    assert jax.tree.map(lambda a: (a.shape, a.dtype), ours_params) == \
        jax.tree.map(lambda a: (a.shape, a.dtype), params)
    for a, b in zip(jax.tree.leaves(ours_params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL)
    assert jax.tree.structure(got_grads) == jax.tree.structure(want_grads)
    for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
        scale = float(jnp.max(jnp.abs(w)))
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("kernel, strides, padding, transpose_kernel, spatial, cin, cout",
                         CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_flax(kernel, strides, padding, transpose_kernel, spatial,
                                     cin, cout):
    x = jax.random.normal(jax.random.key(0), (2, *spatial, cin))
    kwargs = dict(features=cout, kernel_size=kernel, strides=strides, padding=padding,
                  transpose_kernel=transpose_kernel)
    assert_same_layer(layers.ConvTranspose(**kwargs), nn.ConvTranspose(**kwargs), x)


@pytest.mark.parametrize("kernel, strides, padding, spatial, cin, cout", CONV_CASES)
def test_conv_matches_flax(kernel, strides, padding, spatial, cin, cout):
    x = jax.random.normal(jax.random.key(0), (2, *spatial, cin))
    kwargs = dict(features=cout, kernel_size=kernel, strides=strides, padding=padding)
    assert_same_layer(layers.Conv(**kwargs), nn.Conv(**kwargs), x)


def test_dcgan_parameter_tree_is_flax_s():
    """The generator's parameter names and shapes do not depend on which class computes."""
    x = jnp.zeros((1, 7, 7, 8))
    ours = layers.ConvTranspose(4, (5, 5), strides=(2, 2), use_bias=False).init(
        jax.random.key(0), x)
    theirs = nn.ConvTranspose(4, (5, 5), strides=(2, 2), use_bias=False).init(
        jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, theirs) == {
        "params": {"kernel": (5, 5, 8, 4)}}


@pytest.mark.parametrize("layer, reference", [
    (layers.ConvTranspose(3, (3, 3), strides=(2, 2), padding="CIRCULAR"),
     nn.ConvTranspose(3, (3, 3), strides=(2, 2), padding="CIRCULAR")),
    (layers.ConvTranspose(3, (3, 3), strides=(2, 2), kernel_dilation=(2, 2)),
     nn.ConvTranspose(3, (3, 3), strides=(2, 2), kernel_dilation=(2, 2))),
    (layers.Conv(3, (3, 3), strides=(2, 2), padding="CIRCULAR"),
     nn.Conv(3, (3, 3), strides=(2, 2), padding="CIRCULAR")),
    (layers.Conv(4, (3, 3), strides=(2, 2), feature_group_count=2),
     nn.Conv(4, (3, 3), strides=(2, 2), feature_group_count=2)),
])
def test_configurations_not_rewritten_fall_back_to_flax(layer, reference):
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
    params = reference.init(jax.random.key(1), x)
    np.testing.assert_array_equal(layer.apply(params, x), reference.apply(params, x))


@pytest.mark.parametrize("batch_shape", [(), (2, 3)])
def test_batch_axes_are_flattened_like_flax(batch_shape):
    x = jax.random.normal(jax.random.key(0), batch_shape + (5, 5, 2))
    for ours, reference in [(layers.ConvTranspose(3, (3, 3), strides=(2, 2)),
                             nn.ConvTranspose(3, (3, 3), strides=(2, 2))),
                            (layers.Conv(3, (3, 3), strides=(2, 2)),
                             nn.Conv(3, (3, 3), strides=(2, 2)))]:
        params = reference.init(jax.random.key(1), x)
        expected = reference.apply(params, x)
        got = ours.apply(params, x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("cls", [layers.ConvTranspose, layers.Conv])
def test_dtype_is_the_computation_dtype_and_parameters_stay_float32(cls):
    layer = cls(4, (5, 5), strides=(2, 2), dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
    params = layer.init(jax.random.key(1), x)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    y = layer.apply(params, x)
    assert y.dtype == jnp.bfloat16
    reference = (nn.ConvTranspose if cls is layers.ConvTranspose else nn.Conv)(
        4, (5, 5), strides=(2, 2))
    np.testing.assert_allclose(y.astype(jnp.float32), reference.apply(params, x),
                               rtol=0.05, atol=0.05)
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, x).astype(jnp.float32)))(params)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def conv_equations(fn, *args):
    """Every conv_general_dilated in the jaxpr of ``fn(*args)``, custom rules included."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                found.append(eqn)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def multiply_adds(eqn):
    """Multiplications a convolution performs: output elements x window x input features."""
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]
    window = np.prod([rhs[d] for d in dn.rhs_spec[2:]])
    in_features = rhs[dn.rhs_spec[1]]
    return int(np.prod(out)) * int(window) * int(in_features)


def test_strided_layers_never_convolve_a_dilated_array():
    """Forward and both gradients of both layers: no lhs (input) dilation anywhere, so no
    multiplication by an inserted zero."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 8))
    for layer in (layers.ConvTranspose(4, (5, 5), strides=(2, 2)),
                  layers.Conv(4, (5, 5), strides=(2, 2))):
        params = layer.init(jax.random.key(1), x)
        loss = lambda p, x: jnp.sum(layer.apply(p, x) ** 2)  # noqa: E731
        eqns = conv_equations(jax.grad(loss, argnums=(0, 1)), params, x)
        assert len(eqns) >= 3
        assert all(set(e.params["lhs_dilation"]) == {1} for e in eqns)
    # Flax's own transposed convolution does dilate its input.
    flax_layer = nn.ConvTranspose(4, (5, 5), strides=(2, 2))
    params = flax_layer.init(jax.random.key(1), x)
    eqns = conv_equations(lambda p, x: flax_layer.apply(p, x), params, x)
    assert [e.params["lhs_dilation"] for e in eqns] == [(2, 2)]


@pytest.mark.parametrize("n, k, cin, cout", [(7, 5, 8, 4), (14, 5, 4, 1), (6, 4, 3, 2)])
def test_phase_forward_does_exactly_the_nonzero_multiplications(n, k, cin, cout):
    """Stride 2, SAME: each input pixel meets each kernel tap once, n*n*k*k*in*out in all
    (a quarter of what a convolution of the dilated input multiplies)."""
    x = jnp.zeros((1, n, n, cin))
    layer = layers.ConvTranspose(cout, (k, k), strides=(2, 2), use_bias=False)
    params = layer.init(jax.random.key(0), x)
    eqns = conv_equations(lambda p, x: layer.apply(p, x), params, x)
    assert len(eqns) == 4  # one stride-1 convolution per output phase
    assert sum(multiply_adds(e) for e in eqns) == n * n * k * k * cin * cout

    flax_layer = nn.ConvTranspose(cout, (k, k), strides=(2, 2), use_bias=False)
    (dilated,) = conv_equations(lambda p, x: flax_layer.apply(p, x), params, x)
    assert multiply_adds(dilated) == (2 * n) ** 2 * k * k * cin * cout


def test_phase_conv_transpose_matches_lax_for_every_small_configuration():
    """The free function against lax.conv_transpose over a sweep of shapes and paddings
    (including paddings that crop and kernels smaller than the stride)."""
    dn = ("NHWC", "HWIO", "NHWC")
    configs = list(itertools.product((1, 2, 3, 4), (2, 3), (1, 5), (0, 2)))

    @jax.jit
    def sweep(x, w):
        pairs = []
        for k, s, n, pad in configs:
            pads = ((pad, k - 1), (k - 1 - pad, pad + 1))
            xs, ws = x[:, :n, : n + 1], w[:k, :k]
            pairs.append((layers.phase_conv_transpose(xs, ws, (s, s), pads),
                          lax.conv_transpose(xs, ws, (s, s), pads, dimension_numbers=dn)))
        return pairs

    x = jax.random.normal(jax.random.key(0), (1, 5, 6, 2))
    w = jax.random.normal(jax.random.key(1), (4, 4, 2, 3))
    for config, (got, expected) in zip(configs, sweep(x, w)):
        assert got.shape == expected.shape, config
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL, err_msg=str(config))


def test_second_order_reverse_mode_matches_flax():
    """A gradient penalty (grad of a grad, as in R1 or WGAN-GP) differentiates through the
    custom gradients."""
    x = jax.random.normal(jax.random.key(0), (2, 14, 14, 2))
    ours, reference = layers.Conv(3, (5, 5), strides=(2, 2)), nn.Conv(3, (5, 5), strides=(2, 2))
    params = reference.init(jax.random.key(1), x)

    def penalty(layer):
        def fn(p):
            input_grad = jax.grad(lambda x: jnp.sum(jnp.tanh(layer.apply(p, x))))(x)
            return jnp.sum(input_grad**2)
        return jax.grad(fn)(params)

    for g, w in zip(jax.tree.leaves(penalty(ours)), jax.tree.leaves(penalty(reference))):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(w))))


# ---- BatchNorm: batch statistics as matrix-vector products ----

def _batch_norm_pullback(layer, variables, x, cotangent, stats_weights):
    """Output, new batch statistics and the gradients wrt params and input of a loss that
    reaches both the output and the updated running averages (their cotangents too)."""
    def loss(params, x):
        y, updates = layer.apply({**variables, "params": params}, x, mutable=["batch_stats"])
        stats = updates["batch_stats"]
        return jnp.vdot(y, cotangent) + jnp.vdot(stats["mean"], stats_weights[0]) + jnp.vdot(
            stats["var"], stats_weights[1]), (y, stats)
    (_, (y, stats)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        variables.get("params", {}), x)
    return y, stats, grads


@pytest.mark.parametrize("shape, options", [
    ((4, 3, 3, 5), dict()),  # the DCGAN's layers: NHWC, statistics over N, H, W
    ((6, 5), dict(use_scale=False, use_bias=False)),  # ConditionalBatchNorm's inner layer
    ((3, 2, 4, 5), dict(use_scale=False)),
    ((7, 5), dict(use_bias=False, momentum=0.5, epsilon=1e-3)),
])
def test_batch_norm_matches_flax(shape, options):
    x = 1.5 * jax.random.normal(jax.random.key(0), shape) + 0.7
    ours = layers.BatchNorm(use_running_average=False, **options)
    reference = nn.BatchNorm(use_running_average=False, **options)
    variables = reference.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == \
        jax.tree.map(jnp.shape, variables)
    # Nonzero statistics and parameters, so the momentum, scale and bias all show.
    variables = jax.tree.map(lambda v: v + 0.3 * jnp.arange(v.size).reshape(v.shape) / v.size,
                             variables)
    cotangent = jax.random.normal(jax.random.key(2), shape)
    stats_weights = jax.random.normal(jax.random.key(3), (2, shape[-1]))
    got = _batch_norm_pullback(ours, variables, x, cotangent, stats_weights)
    want = _batch_norm_pullback(reference, variables, x, cotangent, stats_weights)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(w))))
    # Eval mode (the running averages) is Flax's own code: the same bits.
    np.testing.assert_array_equal(
        layers.BatchNorm(**options).apply(variables, x, use_running_average=True),
        nn.BatchNorm(**options).apply(variables, x, use_running_average=True))


def test_batch_norm_by_hand():
    """Algorithm 1 of Ioffe & Szegedy (2015) in numpy on a 4x2 matrix, and the gradient of
    sum(y * c) against central differences in float64."""
    x = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 1.5]])
    scale, bias, eps = np.array([2.0, 0.5]), np.array([0.1, -1.0]), 1e-3
    mean, var = x.mean(0), x.var(0)
    y, got_mean, got_var = layers.batch_norm(jnp.asarray(x, jnp.float32), jnp.asarray(
        scale, jnp.float32), jnp.asarray(bias, jnp.float32), eps)
    np.testing.assert_allclose(got_mean, [1.25, 1.0], rtol=1e-6)
    np.testing.assert_allclose(got_var, var, rtol=1e-6)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + eps) * scale + bias, rtol=1e-5)

    c = np.array([[1.0, 0.0], [-2.0, 1.0], [0.5, 3.0], [1.0, -1.0]])
    with jax.enable_x64():
        def f(x):
            return jnp.sum(layers.batch_norm(x, jnp.asarray(scale), jnp.asarray(bias), eps)[0] * c)
        grad = np.asarray(jax.grad(f)(jnp.asarray(x)))
        h, numeric = 1e-6, np.zeros_like(x)
        for index in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[index] = h
            numeric[index] = (f(jnp.asarray(x + step)) - f(jnp.asarray(x - step))) / (2 * h)
        # With epsilon = 0 normalization removes each column's mean and scale, so the
        # gradient is orthogonal to a column's constant and to its centred x (a shift or a
        # scaling of a column changes nothing).
        scale_free = np.asarray(jax.grad(lambda x: jnp.sum(layers.batch_norm(
            x, jnp.asarray(scale), jnp.asarray(bias), 0.0)[0] * c))(jnp.asarray(x)))
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad.sum(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(scale_free.sum(0), 0.0, atol=1e-9)
    np.testing.assert_allclose((scale_free * (x - mean)).sum(0), 0.0, atol=1e-9)


def test_batch_norm_constant_channel_is_flax_s():
    """A constant channel has zero variance (the fast variance clipped at zero): the same
    output and gradients as Flax's, no NaN."""
    x = jnp.concatenate([jax.random.normal(jax.random.key(0), (8, 1)),
                         jnp.full((8, 1), 0.3)], axis=1)
    cotangent = jax.random.normal(jax.random.key(2), x.shape)
    results = []
    for layer in (layers.BatchNorm(use_running_average=False),
                  nn.BatchNorm(use_running_average=False)):
        variables = nn.BatchNorm(use_running_average=False).init(jax.random.key(1), x)
        results.append(_batch_norm_pullback(layer, variables, x, cotangent, jnp.ones((2, 2))))
    for g, w in zip(*map(jax.tree.leaves, results)):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("options, kwargs", [
    (dict(axis=1), {}),  # another feature axis
    (dict(use_fast_variance=False), {}),
    ({}, dict(mask=jnp.arange(5)[:, None, None, None] < 3)),
])
def test_batch_norm_configurations_not_rewritten_fall_back_to_flax(options, kwargs):
    x = jax.random.normal(jax.random.key(0), (5, 3, 3, 4))
    reference = nn.BatchNorm(use_running_average=False, **options)
    variables = reference.init(jax.random.key(1), x, **kwargs)
    got = layers.BatchNorm(use_running_average=False, **options).apply(
        variables, x, mutable=["batch_stats"], **kwargs)
    want = reference.apply(variables, x, mutable=["batch_stats"], **kwargs)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(g, w)


def test_batch_norm_second_order_matches_flax():
    """A gradient of a gradient (a penalty on G's input gradient) through the custom rule."""
    x = jax.random.normal(jax.random.key(0), (6, 3))
    variables = nn.BatchNorm(use_running_average=False).init(jax.random.key(1), x)

    def penalty(layer):
        def fn(p):
            input_grad = jax.grad(lambda x: jnp.sum(jnp.tanh(layer.apply(
                {**variables, "params": p}, x, mutable=["batch_stats"])[0]) * x))(x)
            return jnp.sum(input_grad**2)
        return jax.grad(fn)(variables["params"])

    for g, w in zip(jax.tree.leaves(penalty(layers.BatchNorm(use_running_average=False))),
                    jax.tree.leaves(penalty(nn.BatchNorm(use_running_average=False)))):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(w))))
