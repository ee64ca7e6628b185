"""Generator and discriminator networks for images ``[H, W, C]``, as Flax modules.

Every generator maps noise ``[batch, latent_dim]`` to images ``[batch, *image_shape]`` in its
``output_range`` (``image_shape`` defaults to MNIST's ``(28, 28, 1)``); every discriminator
maps images ``[batch, H, W, C]`` to logits ``[batch]`` (D(x) = sigmoid(logit)). The modules are
used only through ``init``/``apply``; parameters are plain pytrees. Only the DCGAN generator
keeps state besides its parameters (batch normalization's ``batch_stats``); otherwise the only
difference between training and evaluation is dropout, selected by ``train``.

Class-conditional models (``num_classes > 0``; Section 7 of the paper, p(x | c)): every
module is then called with labels as well, ``G(z, labels)`` and ``D(x, labels)``: integer
classes ``[batch]``, or float ``[batch, num_classes]`` mixtures of classes (a one-hot row
is its class; rows in between walk from one class to another, figure 3 of a conditional
run); with ``num_classes == 0`` (the default) the modules take no labels and their
parameters are exactly those of an unconditional model.

Two pairs:

* ``MLPGenerator`` / ``MaxoutDiscriminator``: the MNIST networks of Goodfellow et al. 2014
  (Section 5; the pylearn2 ``mnist.yaml`` of the paper's code): G is 100 -> 1200 ReLU ->
  1200 ReLU -> 784 sigmoid, D is maxout(240 units x 5 pieces) -> maxout(240 x 5) -> 1, with
  dropout (input 0.2, hidden 0.5).
  Any ``image_shape`` works: G's output layer has ``H * W * C`` units.
* ``DCGANGenerator`` / ``DCGANDiscriminator``: a DCGAN pair (Radford et al. 2016) with
  configurable widths for 1- or 3-channel images whose sides are multiples of 4 (28x28, 32x32,
  64x64, ...).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import layers
from jaxgan.layers import spectrally_normalized

IMAGE_SHAPE = (28, 28, 1)

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MLPGenerator",
    "MaxoutDiscriminator",
]


def symmetric_uniform(scale: float) -> Callable:
    """Initializer drawing from U(-scale, scale), pylearn2's ``irange`` (the paper's code)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class MLPGenerator(nn.Module):
    """Goodfellow et al. 2014's MNIST generator: 1200 ReLU -> 1200 ReLU -> 784 sigmoid.

    ``init_range``: weights start as U(-init_range, init_range) as in the paper's code
    (``irange: .05``); ``None`` uses Flax's default (LeCun normal). The paper's code also sets
    the output bias to the logit of the data's mean pixel values:
    ``init_sigmoid_bias_from_marginals``.
    ``num_classes > 0``: conditional, as Mirza & Osindero 2014: the one-hot label is
    concatenated to z.
    """

    hidden: Sequence[int] = (1200, 1200)
    output_range: tuple[float, float] = (0.0, 1.0)
    init_range: float | None = 0.05
    dtype: Any = jnp.float32  # computation dtype; parameters stay float32
    image_shape: tuple[int, int, int] = IMAGE_SHAPE
    num_classes: int = 0

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = False):  # z: [batch, latent_dim]
        del train  # no dropout or batch statistics in G
        dense = _dense(self.init_range, self.dtype)
        x = _with_one_hot(z, labels, self.num_classes, type(self).__name__)
        for width in self.hidden:
            x = nn.relu(dense(width)(x))
        x = nn.sigmoid(dense(math.prod(self.image_shape))(x))
        return x.reshape((z.shape[0],) + tuple(self.image_shape))  # [batch, H, W, C] in [0, 1]


def _check_labels(labels, num_classes: int, where: str) -> None:
    """Labels go with conditional modules (``num_classes > 0``) and only with them."""
    if num_classes and labels is None:
        raise ValueError(f"{where} is conditional ({num_classes} classes): pass labels [batch]")
    if not num_classes and labels is not None:
        raise ValueError(f"{where} is unconditional (num_classes 0): it takes no labels")


def _class_weights(labels, num_classes: int, dtype):
    """Labels as ``[batch, num_classes]`` weights: one-hot rows for integer classes, float
    mixtures as given."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return jax.nn.one_hot(labels, num_classes, dtype=dtype)
    if labels.shape[-1:] != (num_classes,):
        raise ValueError(
            f"float labels are [batch, {num_classes}] class mixtures, got {labels.shape}"
        )
    return labels.astype(dtype)


def _lookup(table, labels):
    """Rows of ``table`` ``[num_classes, features]`` for ``labels``: a gather for integer
    classes, the mixture of rows for float ``[batch, num_classes]`` weights."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return table[labels]
    return _class_weights(labels, table.shape[0], table.dtype) @ table


def _with_one_hot(x, labels, num_classes: int, where: str):
    """``x`` ``[batch, features]`` with the one-hot ``labels`` appended (conditional), or
    ``x`` itself (unconditional)."""
    _check_labels(labels, num_classes, where)
    if not num_classes:
        return x
    return jnp.concatenate([x, _class_weights(labels, num_classes, x.dtype)], axis=-1)


def _dense(init_range: float | None, dtype) -> Callable[..., nn.Dense]:
    if init_range is None:
        return functools.partial(nn.Dense, dtype=dtype)
    return functools.partial(nn.Dense, dtype=dtype, kernel_init=symmetric_uniform(init_range))


def init_sigmoid_bias_from_marginals(g_params, images: np.ndarray, *, eps: float = 1e-7):
    """Sets a sigmoid generator's output bias to logit(mean pixel) of ``images`` in [0, 1].

    The paper's code does this (pylearn2 ``init_sigmoid_bias_from_marginals``), so G starts
    out drawing the average digit instead of uniform gray. Returns new parameters.
    """
    mean = np.clip(np.asarray(images, np.float64).reshape(len(images), -1).mean(0), eps, 1 - eps)
    last = sorted(k for k in g_params if k.startswith("Dense_"))[-1]
    bias = jnp.asarray(np.log(mean) - np.log1p(-mean), jnp.float32)
    if bias.shape != g_params[last]["bias"].shape:
        raise ValueError(f"{last} bias has shape {g_params[last]['bias'].shape}, images give {bias.shape}")
    return {**g_params, last: {**g_params[last], "bias": bias}}


class Maxout(nn.Module):
    """Maxout layer (Goodfellow et al. 2013): the max over ``pieces`` affine maps per unit."""

    units: int
    pieces: int
    init_range: float | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):  # x: [batch, features]
        y = _dense(self.init_range, self.dtype)(self.units * self.pieces)(x)
        return y.reshape(x.shape[:-1] + (self.units, self.pieces)).max(axis=-1)


class MaxoutDiscriminator(nn.Module):
    """Goodfellow et al. 2014's MNIST discriminator: two maxout layers, dropout, one logit.

    ``num_classes > 0``: conditional (Mirza & Osindero 2014): the one-hot label is
    concatenated to the (dropped-out) input pixels.
    """

    units: int = 240
    pieces: int = 5
    num_layers: int = 2
    input_dropout: float = 0.2
    hidden_dropout: float = 0.5
    init_range: float | None = 0.005  # the paper's code: irange .005
    dtype: Any = jnp.float32
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool):  # x: [batch, H, W, C]
        x = x.reshape((x.shape[0], -1))
        x = nn.Dropout(self.input_dropout, deterministic=not train)(x)
        x = _with_one_hot(x, labels, self.num_classes, type(self).__name__)
        for _ in range(self.num_layers):
            x = Maxout(self.units, self.pieces, self.init_range, dtype=self.dtype)(x)
            x = nn.Dropout(self.hidden_dropout, deterministic=not train)(x)
        logits = _dense(self.init_range, self.dtype)(1)(x)
        return logits[:, 0].astype(jnp.float32)  # [batch] logits


def _use_cpu_layers(setting: bool | None) -> bool:
    """Whether a DCGAN module with ``cpu_layers=setting`` uses ``jaxgan.layers``' phase forms:
    ``setting`` itself, or for ``None`` whether JAX's default backend is the CPU (read when
    the module is traced)."""
    return jax.default_backend() == "cpu" if setting is None else bool(setting)


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016): a projection to a small grid, transposed
    convolutions up to ``image_shape``.

    The grid is ``(H / 2^u, W / 2^u)`` for the fewest ``u >= 2`` upsamplings that bring the
    longer side to 8 or less (28x28: 7x7 and u = 2; 32x32: 8x8, u = 2; 64x64: 8x8, u = 3);
    both sides must be multiples of ``2^u``.
    ``widths = (w0, ..., wn)``: channels of the projection, then of each transposed
    convolution: the last ``u - 1`` double the resolution (stride 2), those before them keep
    it (stride 1), and a final stride-2 transposed convolution makes the ``C``-channel image
    (for 28x28: the projection at 7x7, stride-1 layers at 7x7, the last at 14x14). The
    default ``(256, 128, 64)`` is TensorFlow's DCGAN tutorial; ``(128, 64)`` with
    ``dense_width=1024`` and ``kernel_size=4`` is InfoGAN's MNIST generator (Chen et al.
    2016). ``dense_width``: an optional fully connected hidden layer before the projection.
    Each hidden layer is followed by batch normalization and ReLU, the output by ``tanh``
    (Radford et al. 2016, Section 3): without the normalization this generator saturates to
    blank images early in training.

    ``cpu_layers``: compute the stride-2 transposed convolutions by phases
    (``jaxgan.layers.ConvTranspose``, no multiplications by inserted zeros) and the batch
    statistics as matrix-vector products (``jaxgan.layers.BatchNorm``), both written for
    XLA:CPU, or use ``flax.linen.ConvTranspose`` and ``flax.linen.BatchNorm``; ``None`` (the
    default) picks jaxgan's layers when JAX's default backend is the CPU and Flax's native
    layers on GPU and TPU. Both give the same parameters and the same function, to float32
    rounding.

    Batch normalization: with ``train=True`` it normalizes by the statistics of the batch
    and the caller must let the ``batch_stats`` collection be updated (``mutable``); with
    ``train=False`` it uses the given statistics (the running averages, or standing
    statistics: ``GAN.standing_batch_stats``), so each output depends only on its own z.

    ``num_classes > 0``: conditional through class-conditional batch normalization
    (``ConditionalBatchNorm``; de Vries et al. 2017, Miyato & Koyama 2018): every hidden
    normalization's scale and offset are looked up by the label.
    """

    widths: Sequence[int] = (256, 128, 64)
    kernel_size: int = 5
    dense_width: int | None = None
    output_range: tuple[float, float] = (-1.0, 1.0)
    dtype: Any = jnp.float32
    batch_norm_momentum: float = 0.9
    image_shape: tuple[int, int, int] = IMAGE_SHAPE
    num_classes: int = 0
    cpu_layers: bool | None = None

    @nn.compact
    def __call__(self, z, labels=None, *, train: bool = False):  # z: [batch, latent_dim]
        _check_labels(labels, self.num_classes, type(self).__name__)
        (h0, w0_side), upsamplings = dcgan_grid(self.image_shape)
        if len(self.widths) < upsamplings:
            raise ValueError(
                f"DCGANGenerator for {self.image_shape[0]}x{self.image_shape[1]} images needs "
                f"at least {upsamplings} widths ({upsamplings - 1} upsampling layers after the "
                f"projection), got {tuple(self.widths)}"
            )
        k = (self.kernel_size, self.kernel_size)
        cpu_layers = _use_cpu_layers(self.cpu_layers)
        layer = layers.ConvTranspose if cpu_layers else nn.ConvTranspose
        conv_t = functools.partial(layer, kernel_size=k, padding="SAME", dtype=self.dtype)
        options = dict(use_running_average=not train, momentum=self.batch_norm_momentum,
                       epsilon=1e-5, dtype=self.dtype)
        if self.num_classes:
            def norm(x):
                return ConditionalBatchNorm(self.num_classes, cpu_layers=cpu_layers,
                                            **options)(x, labels)
        else:
            batch_norm = layers.BatchNorm if cpu_layers else nn.BatchNorm

            def norm(x):
                return batch_norm(**options)(x)
        x = z
        if self.dense_width is not None:
            x = nn.relu(norm(nn.Dense(self.dense_width, use_bias=False, dtype=self.dtype)(x)))
        w0, *rest = self.widths
        x = nn.Dense(h0 * w0_side * w0, use_bias=False, dtype=self.dtype)(x)
        x = nn.relu(norm(x.reshape((z.shape[0], h0, w0_side, w0))))
        for i, width in enumerate(rest):
            stride = 2 if i >= len(rest) - (upsamplings - 1) else 1
            x = nn.relu(norm(conv_t(width, strides=(stride, stride), use_bias=False)(x)))
        x = conv_t(self.image_shape[-1], strides=(2, 2))(x)  # [batch, H, W, C]
        return jnp.tanh(x)


class ConditionalBatchNorm(nn.Module):
    """Class-conditional batch normalization (de Vries et al. 2017; Miyato & Koyama 2018):
    ``x`` normalized by the batch statistics (running averages when ``use_running_average``)
    as ``nn.BatchNorm`` without its own scale and offset, then ``x * gamma[y] + beta[y]``
    with per-class ``gamma`` (starting at 1) and ``beta`` (starting at 0) looked up by the
    labels ``y`` (float class mixtures mix the rows). The statistics are those of the whole
    batch, whatever its labels. ``cpu_layers``: as in ``DCGANGenerator``."""

    num_classes: int
    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32
    cpu_layers: bool | None = None

    @nn.compact
    def __call__(self, x, labels):  # x: [batch, ..., features], labels: [batch] int
        batch_norm = layers.BatchNorm if _use_cpu_layers(self.cpu_layers) else nn.BatchNorm
        x = batch_norm(use_running_average=self.use_running_average, momentum=self.momentum,
                       epsilon=self.epsilon, dtype=self.dtype, use_scale=False,
                       use_bias=False)(x)
        features = x.shape[-1]
        table_shape = (self.num_classes, features)
        gamma = _lookup(self.param("scale", nn.initializers.ones, table_shape), labels)
        beta = _lookup(self.param("bias", nn.initializers.zeros, table_shape), labels)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
        return x * gamma.reshape(shape).astype(x.dtype) + beta.reshape(shape).astype(x.dtype)


def dcgan_grid(image_shape: Sequence[int]) -> tuple[tuple[int, int], int]:
    """``((h, w), u)``: the DCGAN generator's projection grid and its number of stride-2
    upsamplings for images ``(H, W, C)``; ``u`` is the smallest ``>= 2`` with
    ``max(H, W) / 2^u <= 8``.

    Raises:
      ValueError: the image is not ``[H, W, C]`` with C = 1 or 3, or a side is not a
        multiple of ``2^u``.
    """
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3) or min(image_shape[:2]) < 4:
        raise ValueError(
            f"the DCGAN pair needs images [H, W, C] with H, W >= 4 and C = 1 or 3, got "
            f"{list(image_shape)}"
        )
    height, width = image_shape[:2]
    upsamplings = 2
    while max(height, width) > 8 * 2**upsamplings:
        upsamplings += 1
    factor = 2**upsamplings
    if height % factor or width % factor:
        raise ValueError(
            f"the DCGAN generator doubles a {max(height, width) // factor}-pixel grid "
            f"{upsamplings} times, so both image sides must be multiples of {factor}; "
            f"{height}x{width} is not (use the mlp arch, or resize the images, e.g. to "
            f"{-(-height // factor) * factor}x{-(-width // factor) * factor})"
        )
    return (height // factor, width // factor), upsamplings


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 convolutions with leaky ReLU(0.2), then one logit.

    ``widths``: channels of each stride-2 convolution (28 -> 14 -> 7 for two); any image
    size, since the logit layer takes the flattened last feature map.
    ``dense_width``: an optional fully connected hidden layer (leaky ReLU) before the logit,
    as InfoGAN's MNIST discriminator. No batch statistics: train and eval are the same.
    ``spectral_norm``: every layer's kernel divided by its spectral norm (Miyato et al. 2018;
    ``jaxgan.layers.spectrally_normalized``, ``power_iterations`` rounds per call); the
    parameters are the same as without it.
    ``num_classes > 0``: a projection discriminator (Miyato & Koyama 2018): the logit gains
    the inner product of the last hidden features ``h`` with a learned embedding of the
    label, ``logit = w . h + b + embed[y] . h`` (the embedding is not spectrally normalized).
    ``minibatch_std``: group size of the minibatch standard deviation feature (Karras et al.
    2018, Section 3; ``minibatch_stddev``) appended as one channel to the last convolution's
    output (0: off); it lets D see how varied a group of its inputs is, so that a generator
    whose samples vary too little is told apart from the data.
    ``cpu_layers``: as in ``DCGANGenerator``. With the phase layers every convolution after
    the first is a ``jaxgan.layers.Conv`` (the same forward pass; its input gradient computed
    by phases instead of as a convolution of a zero-dilated input); the first keeps Flax's
    own gradient, which only reaches G through the few channels of the image.
    """

    widths: Sequence[int] = (64, 128)
    kernel_size: int = 5
    dense_width: int | None = None
    negative_slope: float = 0.2
    dtype: Any = jnp.float32
    spectral_norm: bool = False
    power_iterations: int = 20
    num_classes: int = 0
    minibatch_std: int = 0
    cpu_layers: bool | None = None

    @nn.compact
    def __call__(self, x, labels=None, *, train: bool):  # x: [batch, H, W, C]
        del train  # no dropout or batch statistics: train and eval are the same function
        _check_labels(labels, self.num_classes, type(self).__name__)
        k = (self.kernel_size, self.kernel_size)
        convs = [nn.Conv] + [layers.Conv if _use_cpu_layers(self.cpu_layers) else nn.Conv] * (
            len(self.widths) - 1)
        dense = nn.Dense
        if self.spectral_norm:
            convs = [spectrally_normalized(self, c, self.power_iterations) for c in convs]
            dense = spectrally_normalized(self, nn.Dense, self.power_iterations)
        # Explicit names: the same parameter tree with and without spectral normalization.
        for i, (conv, width) in enumerate(zip(convs, self.widths)):
            x = conv(width, k, strides=(2, 2), padding="SAME", dtype=self.dtype, name=f"Conv_{i}")(x)
            x = nn.leaky_relu(x, self.negative_slope)
        if self.minibatch_std:
            x = minibatch_stddev(x, self.minibatch_std)
        x = x.reshape((x.shape[0], -1))
        names = iter(f"Dense_{i}" for i in range(2))
        if self.dense_width is not None:
            x = dense(self.dense_width, dtype=self.dtype, name=next(names))(x)
            x = nn.leaky_relu(x, self.negative_slope)
        self.sow("intermediates", "features", x)  # GAN.discriminator_features
        logits = dense(1, dtype=self.dtype, name=next(names))(x)[:, 0]
        if self.num_classes:
            table = self.param("projection", nn.initializers.normal(1.0 / math.sqrt(x.shape[-1])),
                               (self.num_classes, x.shape[-1]))
            embedding = _lookup(table, labels).astype(x.dtype)
            logits = logits + jnp.sum(embedding * x, axis=-1)
        return logits.astype(jnp.float32)  # [batch] logits


def minibatch_stddev(x: jax.Array, group_size: int) -> jax.Array:
    """``x`` ``[batch, H, W, C]`` with one channel more: for each group of ``group_size``
    consecutive rows, the standard deviation of every feature over the group's rows, averaged
    over the features (Karras et al. 2018, "Progressive growing of GANs", Section 3), the
    same value at every pixel of each of the group's rows.

    Groups are runs of consecutive rows, so a caller that concatenates batches (D's
    ``[real; fake]``) keeps each group within one of them as long as ``group_size`` divides
    each batch; a batch that ``group_size`` does not divide is grouped by their greatest
    common divisor (a group of one row has deviation 0).
    """
    batch = x.shape[0]
    group = math.gcd(group_size, batch)
    groups = x.astype(jnp.float32).reshape((batch // group, group) + x.shape[1:])
    deviation = jnp.sqrt(jnp.var(groups, axis=1) + 1e-8)  # [batch / group, H, W, C]
    feature = jnp.mean(deviation, axis=tuple(range(1, deviation.ndim)))  # [batch / group]
    feature = jnp.repeat(feature, group).astype(x.dtype)  # [batch]
    channel = jnp.broadcast_to(feature.reshape((batch,) + (1,) * (x.ndim - 1)),
                               x.shape[:-1] + (1,))
    return jnp.concatenate([x, channel], axis=-1)


ARCHITECTURES = ("mlp", "dcgan")


def make_models(
    arch: str,
    *,
    dtype: Any = jnp.float32,
    g_widths=None,
    d_widths=None,
    kernel_size: int = 5,
    d_dense: int | None = None,
    d_spectral_norm: bool = False,
    d_minibatch_std: int = 0,
    image_shape: Sequence[int] = IMAGE_SHAPE,
    num_classes: int = 0,
) -> tuple[nn.Module, nn.Module]:
    """Returns ``(generator, discriminator)`` for ``arch`` in ``ARCHITECTURES``.

    Args:
      arch: ``"mlp"`` (the paper's MNIST pair) or ``"dcgan"``.
      dtype: computation dtype (``jnp.bfloat16`` for mixed precision); parameters and the
        discriminator's logits stay float32.
      g_widths: DCGAN generator widths ``(w0, ..., wn)``; ``None`` for the default.
      d_widths: DCGAN discriminator widths; ``None`` for the default.
      kernel_size: the DCGAN pair's square kernel size (both players).
      d_dense: width of the DCGAN discriminator's fully connected hidden layer, or ``None``
        for none.
      d_spectral_norm: spectral normalization of every DCGAN discriminator layer.
      d_minibatch_std: group size of the DCGAN discriminator's minibatch standard deviation
        feature (``minibatch_stddev``); 0 for none.
      image_shape: ``(H, W, C)`` of the data; the generators draw images of this shape (the
        DCGAN pair: ``dcgan_grid`` says which shapes).
      num_classes: ``> 0`` for a class-conditional pair, ``G(z, y)`` and ``D(x, y)`` (the
        MLP pair: one-hot labels concatenated; the DCGAN pair: conditional batch
        normalization in G, a projection discriminator).
    """
    image_shape = tuple(int(d) for d in image_shape)
    if arch == "mlp":
        if ((g_widths, d_widths, d_dense) != (None,) * 3 or kernel_size != 5
                or d_spectral_norm or d_minibatch_std):
            raise ValueError(
                "arch 'mlp' has the paper's fixed widths and layers; drop g_widths/d_widths/kernel_size/"
                "d_dense/d_spectral_norm/d_minibatch_std"
            )
        return (MLPGenerator(dtype=dtype, image_shape=image_shape, num_classes=num_classes),
                MaxoutDiscriminator(dtype=dtype, num_classes=num_classes))
    if arch == "dcgan":
        g_options = {} if g_widths is None else {"widths": tuple(g_widths)}
        d_options = {} if d_widths is None else {"widths": tuple(d_widths)}
        dcgan_grid(image_shape)  # a shape the generator cannot draw fails here, not at init
        g = DCGANGenerator(dtype=dtype, kernel_size=kernel_size,
                           image_shape=image_shape, num_classes=num_classes, **g_options)
        d = DCGANDiscriminator(
            dtype=dtype, kernel_size=kernel_size, dense_width=d_dense,
            spectral_norm=d_spectral_norm, minibatch_std=d_minibatch_std, num_classes=num_classes,
            **d_options
        )
        return g, d
    raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
