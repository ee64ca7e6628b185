"""The static description of a GAN: the two networks, their optimizers and the game's options.

``GAN`` holds no arrays. It is bound into the step functions with ``functools.partial`` before
``jax.jit``, and ``GAN.init`` builds the ``GANState`` that those steps carry.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgan import losses
from jaxgan.augment import random_translate
from jaxgan.models import IMAGE_SHAPE
from jaxgan.state import GANState

NOISE_DISTRIBUTIONS = ("normal", "uniform", "uniform_unit_variance")
UPDATES = ("alternating", "simultaneous")
GENERATED_LABELS = ("uniform", "data")


@dataclasses.dataclass(frozen=True)
class GAN:
    """A generative adversarial net (Goodfellow et al. 2014) ready to train.

    Attributes:
      generator: Flax module, noise ``[batch, latent_dim]`` -> samples ``[batch, *data_shape]``,
        called as ``(z, train=...)`` (conditional: ``(z, labels, train=...)``); it must have
        an ``output_range`` attribute ``(low, high)``.
      discriminator: Flax module, samples -> logits ``[batch]``, called as ``(x, train=...)``
        (conditional: ``(x, labels, train=...)``).
      g_optimizer: any ``optax.GradientTransformation`` for G's parameters.
      d_optimizer: any ``optax.GradientTransformation`` for D's parameters.
      latent_dim: size of the noise vector z.
      noise: the noise prior p_z: ``"normal"`` (N(0, I)), ``"uniform"`` (U(-1, 1)^latent_dim)
        or ``"uniform_unit_variance"`` (U(-sqrt 3, sqrt 3)^latent_dim, the prior of the
        paper's released MNIST code).
      g_loss: ``"minimax"`` (Eq. 1) or ``"nonsaturating"`` (Section 3) with the paper's D loss,
        or ``"forward_kl"`` with it (KL(p_data || p_g) at D's optimum, mass-covering);
        ``"hinge"``, ``"least_squares"`` or ``"wasserstein"`` with theirs (``jaxgan.losses``).
      d_loss: ``"cross_entropy"`` (-V, the paper's), ``"hinge"``, ``"least_squares"`` or
        ``"wasserstein"`` (``jaxgan.losses.discriminator_loss``).
      r1_gamma: if > 0, D's loss gains ``r1_gamma / 2 * E ||grad_x D(x)||^2`` on the real
        batch (R1, Mescheder et al. 2018), as D sees it (after ``augment_shift``).
      gp_weight: if > 0, D's loss gains ``gp_weight * E (||grad D(x_hat)|| - 1)^2`` at random
        interpolates of the real and generated batch (WGAN-GP, Gulrajani et al. 2017: 10).
      d_steps: k of Algorithm 1: discriminator updates per generator update.
      ema_decay: if set, ``GANState.g_ema_params`` tracks an exponential moving average of the
        generator's parameters for sampling, with decay ``min(ema_decay, (1 + t) / (10 + t))``
        at iteration t (a warm-up, so early samples are not dominated by the initialization).
      update: ``"alternating"`` (Algorithm 1: ``d_steps`` D updates, then one G update with
        fresh noise) or ``"simultaneous"`` (the paper's released code: one step computes D's
        and G's gradients at the same parameters, from the same generated batch seen through
        the same D dropout mask, and applies both; needs ``d_steps == 1``).
      d_loss_scale: factor on D's loss in its gradient (the released code's D minimizes
        ``0.5 * (BCE(real) + BCE(fake))``: 0.5); the ``d_loss`` metric stays ``-V``.
      pack: PacGAN packing (Lin et al. 2018): D judges ``pack`` samples at once, stacked
        along the channel axis (real with real, generated with generated), so it can see a
        lack of variety; a minibatch of m samples gives m / pack logits. 1: off.
      augment_shift: DiffAugment translation (Zhao et al. 2020): if > 0, D sees every real
        and generated image shifted by a random offset of up to this many pixels per axis
        (the border filled with ``output_range``'s low end), in D's and G's updates alike.
      data_shape: the shape of one data sample (``(28, 28, 1)`` for MNIST; ``(1,)`` for 1-D toys).
      num_classes: ``> 0`` for a class-conditional GAN (the paper's Section 7, p(x | c);
        Mirza & Osindero 2014): G and D also take integer labels ``[batch]`` in
        ``[0, num_classes)``; D sees each real image with its own label, and every generated
        batch has labels drawn uniformly (``sample_labels``), the same ones in D's fake term
        and G's loss of a simultaneous update. R1 and WGAN-GP's penalty take D's gradient at
        the real labels. 0: unconditional (no labels anywhere). Not combined with ``pack``.
      generated_labels: how a conditional GAN labels its generated batches: ``"uniform"``
        (``sample_labels``), or ``"data"``: a random permutation of the real minibatch's
        labels, so generated labels follow the data's label frequencies (a self-conditioned
        GAN's clusters, Liu et al. 2020, whose sizes differ; ``jaxgan.cluster``).
    """

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    latent_dim: int = 100
    noise: str = "normal"
    g_loss: str = "nonsaturating"
    d_loss: str = "cross_entropy"
    r1_gamma: float = 0.0
    gp_weight: float = 0.0
    d_steps: int = 1
    ema_decay: float | None = None
    update: str = "alternating"
    d_loss_scale: float = 1.0
    augment_shift: int = 0
    pack: int = 1
    data_shape: tuple[int, ...] = IMAGE_SHAPE
    num_classes: int = 0
    generated_labels: str = "uniform"

    def __post_init__(self):
        if self.generated_labels not in GENERATED_LABELS:
            raise ValueError(f"unknown generated_labels {self.generated_labels!r}: choose one "
                             f"of {', '.join(GENERATED_LABELS)}")
        if self.noise not in NOISE_DISTRIBUTIONS:
            raise ValueError(
                f"unknown noise {self.noise!r}: choose one of {', '.join(NOISE_DISTRIBUTIONS)}"
            )
        losses.generator_loss(self.g_loss)  # raises for an unknown name
        losses.discriminator_loss(self.d_loss)
        for name in ("r1_gamma", "gp_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.update not in UPDATES:
            raise ValueError(f"unknown update {self.update!r}: choose one of {', '.join(UPDATES)}")
        if self.update == "simultaneous" and self.d_steps != 1:
            raise ValueError(f"the simultaneous update has one D step per G step, not {self.d_steps}")
        if not self.d_loss_scale > 0:
            raise ValueError(f"d_loss_scale must be > 0, got {self.d_loss_scale!r}")
        if not (isinstance(self.augment_shift, int) and self.augment_shift >= 0):
            raise ValueError(f"augment_shift must be an integer >= 0, got {self.augment_shift!r}")
        if not (isinstance(self.pack, int) and self.pack >= 1):
            raise ValueError(f"pack must be an integer >= 1, got {self.pack!r}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 0):
            raise ValueError(f"num_classes must be an integer >= 0, got {self.num_classes!r}")
        if self.num_classes and self.pack > 1:
            raise ValueError(
                "a conditional GAN (num_classes > 0) does not pack: packed samples would "
                "carry several labels; set pack to 1"
            )
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {self.d_steps}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def init(self, key: jax.Array) -> GANState:
        """Initializes both players and their optimizers; ``key`` is a typed PRNG key.

        G, D and the training stream each get their own key (named folds of ``key``), so no
        two of them share randomness.
        """
        g_key = jax.random.fold_in(key, 0)
        d_key = jax.random.fold_in(key, 1)
        train_key = jax.random.fold_in(key, 2)
        z = jnp.zeros((1, self.latent_dim), jnp.float32)
        x = self.pack_samples(jnp.zeros((self.pack,) + tuple(self.data_shape), jnp.float32))
        labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        g_variables = self.generator.init(g_key, *self._inputs(z, labels), train=False)
        g_params = g_variables["params"]
        d_params = self.discriminator.init(d_key, *self._inputs(x, labels), train=False)["params"]
        return GANState(
            step=jnp.zeros((), jnp.int32),
            key=train_key,
            g_params=g_params,
            d_params=d_params,
            g_opt_state=self.g_optimizer.init(g_params),
            d_opt_state=self.d_optimizer.init(d_params),
            g_batch_stats=dict(g_variables.get("batch_stats", {})),
            # A copy, not an alias: the state is donated, and one buffer cannot be donated twice.
            g_ema_params=None if self.ema_decay is None else jax.tree.map(jnp.copy, g_params),
        )

    def sample_noise(self, key: jax.Array, batch_size: int) -> jax.Array:
        """Draws z ~ p_z, ``[batch_size, latent_dim]`` float32."""
        shape = (batch_size, self.latent_dim)
        if self.noise == "uniform":
            return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
        if self.noise == "uniform_unit_variance":
            half_width = math.sqrt(3.0)
            return jax.random.uniform(key, shape, jnp.float32, -half_width, half_width)
        return jax.random.normal(key, shape, jnp.float32)

    def sample_labels(self, key: jax.Array, batch_size: int) -> jax.Array | None:
        """Labels of a generated batch, uniform over the classes, int32 ``[batch_size]``;
        ``None`` for an unconditional GAN."""
        if not self.num_classes:
            return None
        return jax.random.randint(key, (batch_size,), 0, self.num_classes, jnp.int32)

    def _inputs(self, x: jax.Array, labels) -> tuple:
        """The positional inputs of G or D: ``(x,)``, or ``(x, labels)`` if conditional."""
        if self.num_classes and labels is None:
            raise ValueError(
                f"this GAN is conditional ({self.num_classes} classes): pass labels [batch]"
            )
        if not self.num_classes and labels is not None:
            raise ValueError("this GAN is unconditional (num_classes 0): it takes no labels")
        return (x,) if labels is None else (x, labels)

    def generate(self, g_params, z: jax.Array, *, labels=None, batch_stats=None) -> jax.Array:
        """G(z) (conditional: G(z, labels)) in evaluation mode: samples
        ``[batch, *data_shape]`` in ``output_range``.

        ``batch_stats`` are G's batch-normalization running averages
        (``GANState.g_batch_stats``); needed only by generators that normalize.
        """
        return self.generator.apply(
            _variables(g_params, batch_stats), *self._inputs(z, labels), train=False
        )

    def generate_train(self, g_params, z: jax.Array, *, labels=None, batch_stats=None):
        """G(z) (conditional: G(z, labels)) in training mode: ``(samples, new_batch_stats)``.

        Batch normalization uses the statistics of this batch; ``new_batch_stats`` are the
        updated running averages (an empty dict for generators without normalization).
        """
        images, updates = self.generator.apply(
            _variables(g_params, batch_stats), *self._inputs(z, labels), train=True,
            mutable=["batch_stats"],
        )
        return images, dict(updates.get("batch_stats", {}))

    def discriminate(self, d_params, x: jax.Array, *, labels=None, train: bool,
                     key=None) -> jax.Array:
        """D's logits ``[batch]`` (conditional: of ``x`` with ``labels``); ``key`` feeds
        dropout when ``train`` is true."""
        rngs = {"dropout": key} if train and key is not None else None
        return self.discriminator.apply(
            {"params": d_params}, *self._inputs(x, labels), train=train, rngs=rngs
        )

    def pack_samples(self, samples: jax.Array) -> jax.Array:
        """``[batch, ..., C]`` -> ``[batch / pack, ..., pack * C]``: each group of ``pack``
        consecutive samples stacked along the last (channel) axis, as D sees them."""
        if self.pack == 1:
            return samples
        batch, *rest, channels = samples.shape
        if batch % self.pack:
            raise ValueError(f"pack={self.pack} needs a batch divisible by it, got {batch}")
        grouped = samples.reshape((batch // self.pack, self.pack, *rest, channels))
        return jnp.moveaxis(grouped, 1, -2).reshape((batch // self.pack, *rest, self.pack * channels))

    def augment(self, key: jax.Array, images: jax.Array) -> jax.Array:
        """What D is shown of ``images`` in training (``augment_shift``; unchanged if 0)."""
        return random_translate(key, images, self.augment_shift, self.output_range[0])

    def standing_batch_stats(
        self, g_params, key: jax.Array, *, num_batches: int = 20, batch_size: int = 256
    ):
        """Batch-normalization statistics of G with ``g_params``: "standing statistics".

        G runs in training mode on ``num_batches`` batches of fresh noise (and, conditional,
        uniform labels: ``sample_labels``); each normalization
        layer's batch means and variances are averaged over the batches. Use them to sample
        with weights whose running averages were never tracked, such as the EMA
        (``GANState.g_ema_params``): the running averages in ``GANState.g_batch_stats`` belong
        to the live ``g_params``, and normalizing other weights' activations with them shifts
        every sample (Brock et al. 2019, "standing statistics").

        The generator must expose ``batch_norm_momentum`` (as ``DCGANGenerator`` does): it is
        set to 0 so that the updated running averages are exactly one batch's statistics.
        Returns ``{}`` for a generator without batch normalization. Jit it as a whole.
        """
        z = jax.ShapeDtypeStruct((1, self.latent_dim), jnp.float32)
        labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        shapes = jax.eval_shape(
            lambda z: self.generator.init(
                jax.random.key(0), *self._inputs(z, labels), train=False
            ), z
        ).get("batch_stats")
        if not shapes:
            return {}
        # Any finite values do: with momentum 0 the update is 0 * old + 1 * batch statistic.
        template = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        if not hasattr(self.generator, "batch_norm_momentum"):
            raise ValueError(
                f"{type(self.generator).__name__} has batch statistics but no "
                "batch_norm_momentum field: standing statistics need one"
            )
        one_batch = self.generator.clone(batch_norm_momentum=0.0)

        def batch_stats(key):
            noise = self.sample_noise(key, batch_size)
            labels = self.sample_labels(jax.random.fold_in(key, 1), batch_size)
            _, updates = one_batch.apply(
                _variables(g_params, template), *self._inputs(noise, labels), train=True,
                mutable=["batch_stats"],
            )
            return updates["batch_stats"]

        stats = jax.lax.map(batch_stats, jax.random.split(key, num_batches))
        return jax.tree.map(lambda s: jnp.mean(s, axis=0), stats)

    def discriminator_features(self, d_params, x: jax.Array) -> jax.Array:
        """D's last hidden features of ``x`` ``[batch, *data_shape]`` (in ``output_range``):
        float32 ``[batch, features]``, the input of D's logit layer (its ``"features"``
        intermediate), which no label reaches (a conditional D gets labels 0 only to run).
        A D with the minibatch-standard-deviation feature judges each image alone here (its
        channel is then one constant), so an image's features do not depend on the images
        beside it in ``x``."""
        labels = jnp.zeros(x.shape[:1], jnp.int32) if self.num_classes else None
        discriminator = self.discriminator
        if getattr(discriminator, "minibatch_std", 0):
            discriminator = discriminator.clone(minibatch_std=1)
        _, state = discriminator.apply(
            {"params": d_params}, *self._inputs(x, labels), train=False,
            mutable=["intermediates"],
        )
        features = state.get("intermediates", {}).get("features")
        if features is None:
            raise ValueError(f"{type(self.discriminator).__name__} sows no 'features' intermediate")
        return features[0].astype(jnp.float32)

    @property
    def output_range(self) -> tuple[float, float]:
        """The interval G's images lie in; real images must be scaled to it."""
        return tuple(self.generator.output_range)

    def to_unit_interval(self, images: jax.Array) -> jax.Array:
        """Maps images from ``output_range`` to [0, 1]."""
        low, high = self.output_range
        return jnp.clip((images - low) / (high - low), 0.0, 1.0)

    def from_unit_interval(self, images: jax.Array) -> jax.Array:
        """Maps images in [0, 1] to ``output_range`` (how real data is fed to D)."""
        low, high = self.output_range
        return images * (high - low) + low


def _variables(params, batch_stats) -> dict:
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    return variables
