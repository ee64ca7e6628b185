"""Layers shared by the models: strided convolutions and batch normalization that XLA:CPU
runs fast.

``ConvTranspose`` and ``Conv`` are ``flax.linen.ConvTranspose`` and ``flax.linen.Conv``: the
same attributes, the same parameters (``kernel`` ``[*kernel_size, in, out]``, ``bias``
``[out]``) and the same function, to float32 rounding. Only how the strided layers are
computed, and differentiated, changes (profiled in docs/performance.md):

* A transposed convolution with stride s is a convolution of the input dilated by s (s - 1
  zeros between pixels). Its output phase ``y[s*m + r]`` (r = 0 .. s-1 per spatial axis) is an
  ordinary stride-1 convolution of the undilated input with the taps ``kernel[t0(r)::s]``
  that land on real pixels, so the forward pass here is s^d such phase convolutions
  interleaved by depth-to-space (``phase_conv_transpose``): every multiplication is by an
  input pixel, never by an inserted zero (the sub-pixel view of Shi et al. 2016, "Real-Time
  Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural
  Network", made exact).
* The gradients of both layers are written out (``jax.custom_vjp``) so that XLA never sees a
  convolution of a dilated input: the input gradient of a transposed convolution is a strided
  convolution, the input gradient of a strided convolution is a transposed convolution
  (computed by phases), and the kernel gradient of a transposed convolution is taken as the
  kernel gradient of that strided convolution. Left to autodiff, XLA:CPU computes the kernel
  gradient of a stride-2 transposed convolution as a convolution of a dilated input, many
  times slower than its forward pass (measured by ``benchmarks.layers``; docs/performance.md).

``BatchNorm`` is ``flax.linen.BatchNorm`` (the same attributes, variables and function)
whose batch statistics, and the sums of their gradient (written out, ``batch_norm``), are
matrix-vector products with a vector of ones: XLA:CPU lowers a sum over the batch and
spatial axes to ``reduce-window`` ops, a dot to one library call.

These custom gradients support reverse mode, to any order; forward mode (``jax.jvp``,
``jax.jacfwd``) through the strided layers and ``BatchNorm`` is not supported.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import dtypes
from flax.linen.linear import canonicalize_padding
from jax import lax


def _dimension_numbers(num_spatial: int) -> tuple[str, str, str]:
    """Channels-last dimension numbers (NHWC, HWIO, NHWC for two spatial axes)."""
    if not 1 <= num_spatial <= 3:
        raise ValueError(f"1 to 3 spatial axes are supported, got {num_spatial}")
    spatial = "DHW"[-num_spatial:]
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def _transpose_pads(kernel_size: Sequence[int], strides: Sequence[int], padding) -> list:
    """The (low, high) padding of the dilated input that ``lax.conv_transpose`` applies."""
    if isinstance(padding, str):
        padding = [padding] * len(kernel_size)
    pads = []
    for k, s, p in zip(kernel_size, strides, padding):
        if p == "SAME":  # lax.conv_transpose's _conv_transpose_padding, kernel dilation 1
            total = k + s - 2
            low = k - 1 if s > k - 1 else int(np.ceil(total / 2))
        elif p == "VALID":
            total = k + s - 2 + max(k - s, 0)
            low = k - 1
        else:  # an explicit (low, high) pair is the padding of the dilated input itself
            low, high = p
            total = low + high
        pads.append((low, total - low))
    return pads


def _phase(n: int, k: int, s: int, low: int, out_len: int, r: int):
    """Output phase ``r`` of one axis: which taps it uses and how to pad the input.

    Output position ``o = s*m + r`` of the dilated-input correlation is
    ``sum_t w[t] * x[(o + t - low) / s]`` over the taps t that make the index whole; those are
    ``t = t0 + s*u`` and then the index is ``m + u + shift``. So phase r is the stride-1
    correlation of x (padded by ``-shift`` before) with ``w[t0::s]``.

    Returns:
      ``(t0, taps, length, (pad_low, pad_high))``: first tap, number of taps, number of
      outputs of this phase, and the padding (negative: cropping) of the undilated input.
    """
    t0 = (low - r) % s
    taps = len(range(t0, k, s))
    length = len(range(r, out_len, s))
    shift = (r + t0 - low) // s  # exact: r + t0 - low is a multiple of s
    pad_low = -shift
    pad_high = length + taps - 1 - n - pad_low
    return t0, taps, length, (pad_low, pad_high)


def phase_conv_transpose(
    inputs: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    *,
    precision=None,
    preferred_element_type=None,
) -> jax.Array:
    """The forward pass of ``lax.conv_transpose(inputs, kernel, strides, pads)``, by phases.

    Each output phase is one stride-1 ``lax.conv_general_dilated`` of the undilated input
    with the kernel taps that reach it (``_phase``); the phases are interleaved by
    depth-to-space. No multiplication by an inserted zero. Differentiate ``conv_transpose``,
    not this function: autodiff of the phases is correct but slower.

    Args:
      inputs: ``[batch, *spatial, in]`` (NHWC for two spatial axes).
      kernel: ``[*kernel_size, in, out]``, used as ``lax.conv_transpose`` with
        ``transpose_kernel=False`` uses it (not flipped).
      strides: the stride of each spatial axis.
      pads: the ``(low, high)`` padding of the dilated input per spatial axis (what
        ``lax.conv_transpose`` computes from ``"SAME"``/``"VALID"``; see ``_transpose_pads``).
      precision, preferred_element_type: passed to each ``lax.conv_general_dilated``.

    Returns:
      ``[batch, *out_spatial, out]`` with ``out = (n - 1) * s + 1 + low + high - k + 1`` per
      axis: the same values as ``lax.conv_transpose``, up to float summation order.
    """
    num_spatial = inputs.ndim - 2
    in_sizes = inputs.shape[1:-1]
    kernel_size = kernel.shape[:num_spatial]
    out_sizes = [  # empty (not negative) when the padding crops everything, as in XLA
        max(0, (n - 1) * s + 1 + low + high - k + 1)
        for n, s, (low, high), k in zip(in_sizes, strides, pads, kernel_size)
    ]
    dimension_numbers = _dimension_numbers(num_spatial)
    phases = [
        [_phase(n, k, s, low, out_len, r) for r in range(s)]
        for n, k, s, (low, _), out_len in zip(in_sizes, kernel_size, strides, pads, out_sizes)
    ]
    batch, features = inputs.shape[0], kernel.shape[-1]
    dtype = preferred_element_type or jnp.result_type(inputs, kernel)

    def phase_output(rs):  # [batch, *phase_lengths, out]
        per_axis = [phases[axis][r] for axis, r in enumerate(rs)]
        lengths = [length for _, _, length, _ in per_axis]
        if any(taps == 0 for _, taps, _, _ in per_axis) or 0 in lengths:
            # No tap lands on an input pixel (kernel smaller than the stride): zeros, not a
            # convolution with an empty kernel.
            return jnp.zeros((batch, *lengths, features), dtype)
        taps = tuple(slice(t0, None, s) for (t0, _, _, _), s in zip(per_axis, strides))
        pads = [pad for _, _, _, pad in per_axis]
        # Negative padding (cropping) is done by slicing: XLA:CPU's convolution computes
        # wrong values for some negative paddings (seen with jaxlib 0.10.2).
        x = inputs
        if any(low < 0 or high < 0 for low, high in pads):
            start = [0] + [max(0, -low) for low, _ in pads] + [0]
            limit = ([batch] + [n - max(0, -high) for n, (_, high) in zip(in_sizes, pads)]
                     + [inputs.shape[-1]])
            if any(a >= b for a, b in zip(start[1:-1], limit[1:-1])):
                return jnp.zeros((batch, *lengths, features), dtype)  # reads padding only
            x = lax.slice(inputs, start, limit)
            pads = [(max(0, low), max(0, high)) for low, high in pads]
        return lax.conv_general_dilated(
            x,
            kernel[taps],
            window_strides=(1,) * num_spatial,
            padding=pads,
            dimension_numbers=dimension_numbers,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )

    def interleave(prefix):  # the phases whose first len(prefix) axes are fixed to prefix
        axis = len(prefix)
        if axis == num_spatial:
            return phase_output(prefix)
        s, out_len = strides[axis], out_sizes[axis]
        parts = [interleave(prefix + (r,)) for r in range(s)]
        if s == 1:
            return parts[0]
        rows = -(-out_len // s)  # phase 0 is the longest
        parts = [
            jnp.pad(p, [(0, rows - p.shape[1 + axis]) if i == 1 + axis else (0, 0)
                        for i in range(p.ndim)])
            if p.shape[1 + axis] != rows else p
            for p in parts
        ]
        # depth-to-space along this axis: y[s*m + r] = phase_r[m]
        stacked = jnp.stack(parts, axis=2 + axis)  # [..., rows, s, ...]
        shape = stacked.shape[: 1 + axis] + (rows * s,) + stacked.shape[3 + axis:]
        merged = stacked.reshape(shape)
        return lax.slice_in_dim(merged, 0, out_len, axis=1 + axis)

    return interleave(())


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def conv_transpose(inputs, kernel, strides, pads, precision=None, preferred_element_type=None):
    """``lax.conv_transpose(inputs, kernel, strides, pads)`` by phases, with fast gradients.

    The forward pass is ``phase_conv_transpose``. The input gradient is the adjoint strided
    convolution; the kernel gradient uses <x_bar(kernel), x> = <y_bar, y(x, kernel)>: it is the
    kernel gradient of the strided convolution x_bar(kernel) at cotangent x. Neither touches a
    dilated array.

    Args:
      inputs: ``[batch, *spatial, in]``.
      kernel: ``[*kernel_size, in, out]``, not flipped (``transpose_kernel=False``).
      strides: the stride of each spatial axis (a tuple).
      pads: ``(low, high)`` padding of the dilated input per spatial axis (a tuple of pairs).
      precision, preferred_element_type: as in ``lax.conv_general_dilated``.
    """
    return phase_conv_transpose(
        inputs, kernel, strides, pads,
        precision=precision, preferred_element_type=preferred_element_type,
    )


def _conv_transpose_fwd(inputs, kernel, strides, pads, precision, preferred_element_type):
    y = conv_transpose(inputs, kernel, strides, pads, precision, preferred_element_type)
    return y, (inputs, kernel)


def _conv_transpose_bwd(strides, pads, precision, preferred_element_type, residuals, y_bar):
    inputs, kernel = residuals
    dilated = functools.partial(  # only its transposes are ever computed
        lax.conv_transpose,
        strides=strides,
        padding=pads,
        dimension_numbers=_dimension_numbers(inputs.ndim - 2),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )

    def input_grad(kernel):  # x_bar = (d y / d x)^T y_bar: a strided convolution of y_bar
        (inputs_bar,) = jax.linear_transpose(lambda x: dilated(x, kernel), inputs)(y_bar)
        return inputs_bar

    # linear_transpose, not vjp: the dilated forward convolution is never evaluated.
    inputs_bar = input_grad(kernel)
    (kernel_bar,) = jax.linear_transpose(input_grad, kernel)(inputs)
    return inputs_bar, kernel_bar


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def _conv_input_grad_pads(in_sizes, out_sizes, kernel_size, strides, pads):
    """Padding of the transposed convolution that is the input gradient of a convolution.

    For ``y[m] = sum_t w[t] x[s*m + t - low]``, ``x_bar[i] = sum w[t] y_bar[m]`` over
    ``s*m + t - low = i``: the transposed convolution of ``y_bar`` with the flipped kernel and
    dilated-input padding ``(k - 1 - low, n - (M - 1) * s - 1 + low)``.
    """
    return tuple(
        (k - 1 - low, n - (m - 1) * s - 1 + low)
        for n, m, k, s, (low, _) in zip(in_sizes, out_sizes, kernel_size, strides, pads)
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def strided_conv(inputs, kernel, strides, pads, precision=None):
    """``lax.conv_general_dilated(inputs, kernel, strides, pads)`` with a phase input gradient.

    Args:
      inputs: ``[batch, *spatial, in]``.
      kernel: ``[*kernel_size, in, out]``.
      strides: the window strides (a tuple).
      pads: explicit ``(low, high)`` padding per spatial axis (a tuple of pairs).
      precision: as in ``lax.conv_general_dilated``.
    """
    return lax.conv_general_dilated(
        inputs, kernel, strides, pads,
        dimension_numbers=_dimension_numbers(inputs.ndim - 2), precision=precision,
    )


def _strided_conv_fwd(inputs, kernel, strides, pads, precision):
    return strided_conv(inputs, kernel, strides, pads, precision), (inputs, kernel)


def _strided_conv_bwd(strides, pads, precision, residuals, y_bar):
    inputs, kernel = residuals
    num_spatial = inputs.ndim - 2
    flipped = jnp.flip(kernel, axis=tuple(range(num_spatial))).swapaxes(-1, -2)
    transpose_pads = _conv_input_grad_pads(
        inputs.shape[1:-1], y_bar.shape[1:-1], kernel.shape[:num_spatial], strides, pads
    )
    inputs_bar = conv_transpose(
        y_bar, flipped, strides, transpose_pads, precision
    ).astype(inputs.dtype)
    (kernel_bar,) = jax.vjp(
        lambda k: lax.conv_general_dilated(
            inputs, k, strides, pads,
            dimension_numbers=_dimension_numbers(num_spatial), precision=precision,
        ),
        kernel,
    )[1](y_bar)
    return inputs_bar, kernel_bar


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def _spatial(value, num_spatial: int) -> tuple[int, ...]:
    """Flax's broadcast of an int / ``None`` / sequence attribute to one int per axis."""
    if value is None:
        value = 1
    return (value,) * num_spatial if isinstance(value, int) else tuple(value)


def _flatten_batch(inputs, num_spatial: int):
    """``inputs`` with exactly one batch axis, and the batch shape to restore (as Flax)."""
    batch_shape = inputs.shape[: inputs.ndim - num_spatial - 1]
    return inputs.reshape((-1,) + inputs.shape[len(batch_shape):]), batch_shape


def _geometry(module):
    """``(kernel_size, num_spatial, strides, padding)`` of a ``flax.linen`` convolution, as
    tuples and canonical padding."""
    kernel_size = (
        (module.kernel_size,) if isinstance(module.kernel_size, int) else tuple(module.kernel_size)
    )
    num_spatial = len(kernel_size)
    return (kernel_size, num_spatial, _spatial(module.strides, num_spatial),
            canonicalize_padding(module.padding, num_spatial))


def _kernel_and_bias(module, inputs, kernel_shape):
    """Flax's own convolution parameters (``kernel``, masked as Flax masks it, and ``bias``) of
    ``module`` (a ``flax.linen`` convolution), promoted with the inputs to its dtype."""
    if module.mask is not None and module.mask.shape != kernel_shape:
        raise ValueError(
            "Mask needs to have the same shape as weights. "
            f"Shapes are: {module.mask.shape}, {kernel_shape}"
        )
    kernel = module.param("kernel", module.kernel_init, kernel_shape, module.param_dtype)
    if module.mask is not None:
        kernel *= module.mask
    bias = (
        module.param("bias", module.bias_init, (module.features,), module.param_dtype)
        if module.use_bias else None
    )
    return module.promote_dtype(inputs, kernel, bias, dtype=module.dtype)


class ConvTranspose(nn.ConvTranspose):
    """``flax.linen.ConvTranspose`` computed by phases, without multiplications by zeros.

    Same attributes, parameters (``kernel`` ``[*kernel_size, in, out]``, ``bias`` ``[out]``)
    and function as ``flax.linen.ConvTranspose``; ``dtype`` is the computation dtype
    (parameters stay ``param_dtype``). Layers with a stride > 1, ``SAME``, ``VALID`` or
    explicit padding and no kernel dilation run as ``conv_transpose``; every other
    configuration (stride 1 everywhere, where there is nothing to gain, ``CIRCULAR``
    padding, kernel dilation) runs Flax's own code.
    """

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """Applies the transposed convolution to ``inputs`` ``[*batch, *spatial, in]``."""
        kernel_size, num_spatial, strides, padding = _geometry(self)
        if (
            (isinstance(padding, str) and padding not in ("SAME", "VALID"))
            or any(d != 1 for d in _spatial(self.kernel_dilation, num_spatial))
            or all(s == 1 for s in strides)
            or not 1 <= num_spatial <= 3
        ):
            return super().__call__(inputs)

        inputs, batch_shape = _flatten_batch(inputs, num_spatial)
        in_features = inputs.shape[-1]
        if self.transpose_kernel:
            kernel_shape = kernel_size + (self.features, in_features)
        else:
            kernel_shape = kernel_size + (in_features, self.features)
        inputs, kernel, bias = _kernel_and_bias(self, inputs, kernel_shape)
        if self.transpose_kernel:  # what lax.conv_transpose does with transpose_kernel=True
            kernel = jnp.flip(kernel, axis=tuple(range(num_spatial))).swapaxes(-1, -2)

        pads = tuple(_transpose_pads(kernel_size, strides, padding))
        y = conv_transpose(
            inputs, kernel, strides, pads, self.precision, self.preferred_element_type
        )
        if bias is not None:
            y = add_bias(y, bias)
        return y.reshape(batch_shape + y.shape[1:])


class Conv(nn.Conv):
    """``flax.linen.Conv`` whose strided layers have a phase input gradient.

    Same attributes, parameters and function as ``flax.linen.Conv``. Layers with a stride > 1,
    ``SAME``, ``VALID`` or explicit padding, no input or kernel dilation and one feature group
    run as ``strided_conv`` (the forward pass is the same ``lax.conv_general_dilated``; only the
    input gradient changes); every other configuration runs Flax's own code.
    """

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """Applies the convolution to ``inputs`` ``[*batch, *spatial, in]``."""
        kernel_size, num_spatial, strides, padding = _geometry(self)
        if (
            (isinstance(padding, str) and padding not in ("SAME", "VALID"))
            or any(d != 1 for d in _spatial(self.input_dilation, num_spatial))
            or any(d != 1 for d in _spatial(self.kernel_dilation, num_spatial))
            or self.feature_group_count != 1
            or all(s == 1 for s in strides)
            or not 1 <= num_spatial <= 3
        ):
            return super().__call__(inputs)

        inputs, batch_shape = _flatten_batch(inputs, num_spatial)
        kernel_shape = kernel_size + (inputs.shape[-1], self.features)
        inputs, kernel, bias = _kernel_and_bias(self, inputs, kernel_shape)
        if isinstance(padding, str):
            pads = lax.padtype_to_pads(inputs.shape[1:-1], kernel_size, strides, padding)
        else:
            pads = padding
        pads = tuple((int(low), int(high)) for low, high in pads)
        y = strided_conv(inputs, kernel, strides, pads, self.precision)
        if bias is not None:
            y = add_bias(y, bias)
        return y.reshape(batch_shape + y.shape[1:])


def _column_sums(x: jax.Array) -> jax.Array:
    """``x.sum(0)`` of a matrix ``[rows, features]``, as the product of a vector of ones with it.

    XLA:CPU rewrites a reduction over many rows into ``reduce-window`` ops (a tree of
    partial sums, for accuracy) and runs them slower than this one matrix-vector product,
    a single library call (docs/performance.md)."""
    ones = jnp.ones((x.shape[0],), x.dtype)
    return jnp.dot(ones, x, precision=lax.Precision.HIGHEST)


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """``y + bias`` over the last axis; the bias gradient, the sum of ``y_bar`` over every
    other axis, is a matrix-vector product (``_column_sums``), not a reduction."""
    return y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,)).astype(y.dtype)


def _add_bias_fwd(y, bias):
    return add_bias(y, bias), bias


def _add_bias_bwd(bias, y_bar):
    sums = _column_sums(y_bar.reshape(-1, y_bar.shape[-1]).astype(bias.dtype))
    return y_bar, sums.astype(bias.dtype)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm(x, scale, bias, epsilon):
    """Batch normalization of ``x`` ``[rows, features]`` by its own statistics (Ioffe &
    Szegedy 2015, Algorithm 1): ``y = (x - mean) / sqrt(var + epsilon) * scale + bias``.

    ``mean`` and ``var`` (biased) are over the rows, ``var = max(0, mean(x^2) - mean^2)``
    as ``flax.linen.BatchNorm``'s fast variance computes it, every sum a matrix-vector
    product (``_column_sums``). The gradient is written out (Ioffe & Szegedy 2015,
    Section 3) so that its sums are matrix-vector products too.

    Returns:
      ``(y, mean, var)``: ``y`` ``[rows, features]``, ``mean`` and ``var`` ``[features]``;
      all three are differentiable.
    """
    return _batch_norm_fwd(x, scale, bias, epsilon)[0]


def _batch_norm_fwd(x, scale, bias, epsilon):
    rows = x.shape[0]
    mean = _column_sums(x) / rows
    raw_var = _column_sums(x * x) / rows - mean * mean
    var = jnp.maximum(0.0, raw_var)  # round-off can make the difference negative
    rstd = lax.rsqrt(var + epsilon)
    y = (x - mean[None]) * (rstd * scale)[None] + bias[None]
    return (y, mean, var), (x, scale, mean, rstd, raw_var > 0)


def _batch_norm_bwd(epsilon, residuals, cotangents):
    """With ``xhat = (x - mean) * rstd``, ``g = y_bar * scale``: ``x_bar = rstd * (g - mean(g)
    - xhat * mean(g * xhat)) + (mean_bar + 2 (x - mean) var_bar) / rows``; the terms through
    ``var`` vanish where the clip to zero was taken, as they do under autodiff."""
    del epsilon
    x, scale, mean, rstd, positive = residuals
    y_bar, mean_bar, var_bar = cotangents
    rows = x.shape[0]
    centred = x - mean[None]
    xhat = centred * rstd[None]
    bias_bar = _column_sums(y_bar)
    scale_bar = _column_sums(y_bar * xhat)
    through_var = jnp.where(positive, scale_bar, 0.0) / rows
    var_bar = jnp.where(positive, var_bar, 0.0) / rows
    x_bar = (rstd * scale)[None] * (y_bar - (bias_bar / rows)[None] - xhat * through_var[None]) + (
        (mean_bar / rows)[None] + 2.0 * centred * var_bar[None])
    return x_bar, scale_bar, bias_bar


batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


class BatchNorm(nn.BatchNorm):
    """``flax.linen.BatchNorm`` whose batch statistics and their gradients are
    matrix-vector products (``batch_norm``), written for XLA:CPU.

    Same attributes, variables (``params``: ``scale``, ``bias``; ``batch_stats``: ``mean``,
    ``var``), running-average update and function as ``flax.linen.BatchNorm``, to float32
    rounding. Normalizing by batch statistics over every axis but the last, with the fast
    variance and float32 statistics (Flax's defaults), runs as ``batch_norm``; every other
    configuration (the running averages, which need no sums, a ``mask``, an ``axis_name``,
    other feature axes) runs Flax's own code.
    """

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        """Normalizes ``x`` ``[*batch, features]`` (see ``flax.linen.BatchNorm.__call__``)."""
        at_call = use_running_average  # for Flax's code, which merges it again
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average)
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        if (
            use_running_average
            or mask is not None
            or self.axis_name is not None
            or not self.use_fast_variance
            or not self.force_float32_reductions
            or x.ndim < 2
            or tuple(a % x.ndim for a in axes) != (x.ndim - 1,)
            or not jnp.issubdtype(x.dtype, jnp.floating)
        ):
            return super().__call__(x, at_call, mask=mask)

        features = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32),
                                (features,))
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32),
                               (features,))
        compute = jnp.promote_types(self.dtype or x.dtype, jnp.float32)
        used = [x]
        scale = jnp.ones((features,), compute)
        bias = jnp.zeros((features,), compute)
        if self.use_scale:
            used.append(self.param("scale", self.scale_init, (features,), self.param_dtype))
            scale = used[-1].astype(compute)
        if self.use_bias:
            used.append(self.param("bias", self.bias_init, (features,), self.param_dtype))
            bias = used[-1].astype(compute)
        y, mean, var = batch_norm(x.reshape(-1, features).astype(compute), scale, bias,
                                  self.epsilon)
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y.reshape(x.shape).astype(dtypes.canonicalize_dtype(*used, dtype=self.dtype))


def spectral_norm(matrix: jax.Array, iterations: int) -> jax.Array:
    """The largest singular value of ``matrix`` ``[m, n]`` by power iteration.

    ``iterations`` rounds of ``u <- W v / |W v|, v <- W^T u / |W^T u|`` from a fixed start
    vector, then ``sigma = u^T W v``. As in Miyato et al. 2018 (and PyTorch's
    ``spectral_norm``), ``u`` and ``v`` are constants for differentiation: the gradient of
    ``sigma`` is ``u v^T``. Unlike them, nothing is carried between calls (no power-iteration
    state in the model), so each call iterates from the same start: the same function in
    training and evaluation, at the cost of more iterations per call (cheap next to a
    convolution: two matrix-vector products each).
    """
    w = lax.stop_gradient(matrix).astype(jnp.float32)
    v = jax.random.normal(jax.random.key(0), (w.shape[1],), jnp.float32)

    def normalize(x):
        return x / (jnp.linalg.norm(x) + 1e-12)

    def body(_, v):
        return normalize(w.T @ normalize(w @ v))

    v = lax.fori_loop(0, iterations, body, normalize(v))
    u = normalize(w @ v)
    return u @ (matrix.astype(jnp.float32) @ v)


def spectrally_normalized(
    parent: nn.Module, layer: type[nn.Module], iterations: int
) -> type[nn.Module]:
    """``layer`` (``nn.Conv``, ``nn.Dense``, ...) with its kernel divided by its spectral norm
    whenever it is applied (Miyato et al. 2018, "Spectral Normalization for Generative
    Adversarial Networks"), for use inside ``parent``'s compact ``__call__``. The kernel
    ``[..., in, out]`` is viewed as a matrix ``[prod(...) * in, out]`` as in their paper.

    The stored parameters are the plain layer's (names, shapes, initialization): while
    ``parent`` is initializing this returns ``layer`` itself, since ``nn.map_variables`` would
    store the normalized kernel instead; afterwards it normalizes them only when it reads
    them. Give the layers explicit names so that both paths name them alike.
    """
    if parent.is_initializing():
        return layer

    def normalize(variables):
        params = variables.get("params", {})
        kernel = params["kernel"]
        sigma = spectral_norm(kernel.reshape(-1, kernel.shape[-1]), iterations)
        return {**variables, "params": {**params, "kernel": kernel / sigma.astype(kernel.dtype)}}

    return nn.map_variables(layer, "params", trans_in_fn=normalize)
