"""GAN losses on discriminator logits, and the penalties on D's input gradient.

The paper's game (Goodfellow et al. 2014, Eq. 1 and Section 3): D(x) = sigmoid(logit). Every log-probability is computed as ``log_sigmoid`` of a logit, never
as ``log(sigmoid(.))``, so the losses stay finite for logits of any size:
log D(x) = log_sigmoid(l) and log(1 - D(x)) = log_sigmoid(-l).

All loss functions take keyword-only logits ``[batch]`` and return float32 scalars (means over
the batch, the Monte-Carlo estimates of the expectations in Eq. 1; ``forward_kl``'s is the log
of one).

Other games that GAN libraries offer, by name (``DISCRIMINATOR_LOSSES``, ``GENERATOR_LOSSES``;
the logit is then D's raw output, a "critic" score, not a probability):

* ``hinge`` (Lim & Ye 2017; Miyato et al. 2018, SNGAN): D minimizes
  E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimizes -E[D(G(z))].
* ``least_squares`` (Mao et al. 2017, LSGAN, the a=0, b=c=1 coding): D minimizes
  1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2], G minimizes 1/2 E[(D(G(z)) - 1)^2].
* ``wasserstein`` (Arjovsky et al. 2017): D minimizes E[D(G(z))] - E[D(x)], G minimizes
  -E[D(G(z))]; D must be kept near 1-Lipschitz, e.g. by ``gradient_penalty`` (WGAN-GP,
  Gulrajani et al. 2017). The hinge and Wasserstein G losses are the same function.

One more G loss goes with the paper's cross-entropy D, whose output l is a probability's
logit, log D/(1 - D): ``forward_kl``, G minimizes -log E_z[exp(l(G(z)))]. At D's optimum
l = log p_data/p_g, so exp(l) is the density ratio r and this loss's gradient is that of
KL(p_data || p_g), the forward, mass-covering divergence (Nowozin et al. 2016, f-GAN; Poole et
al. 2016), divided by the batch's mean ratio E_pg[r] (1 at the optimum): each generated sample
is pushed with weight softmax(l) over the batch, the most where D sees more data than model,
where the non-saturating loss weights 1 - D(G(z)), the most where D sees more model than data.

Names are unambiguous on purpose: the paper's D loss is ``cross_entropy``; elsewhere "vanilla
GAN" often means the cross-entropy D with the *non-saturating* G loss (Section 3), not Eq. 1's
``minimax`` one.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "value_function",
    "generator_loss",
    "discriminator_loss",
    "r1_penalty",
    "gradient_penalty",
]


def value_function(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] (Goodfellow et al. 2014, Eq. 1).

    Args:
      real_logits: D's logits on data samples x, ``[batch]``.
      fake_logits: D's logits on generated samples G(z), ``[batch]``.
    """
    return jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def cross_entropy_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-V(D, G): D ascends V (Algorithm 1), i.e. descends this loss."""
    return -value_function(real_logits=real_logits, fake_logits=fake_logits)


def minimax_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """E_z[log(1 - D(G(z)))]: the term of Eq. 1 that G minimizes (the saturating loss)."""
    return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def nonsaturating_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E_z[log D(G(z))]: Section 3's alternative with strong gradients early in training."""
    return -jnp.mean(jax.nn.log_sigmoid(fake_logits))


def forward_kl_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-log E_z[exp(l(G(z)))], l D's logit: the forward-KL G loss, KL(p_data || p_g) at D's optimum.

    With D optimal, l = log p_data/p_g and d/dtheta KL(p_data || p_g) = -E_z[grad_x r(G(z))
    dG/dtheta] for r = exp(l) held fixed, the gradient of -E_z[r(G(z))]; taking the log divides
    it by E_z[r] (the batch's mean ratio, 1 at the optimum), which keeps the loss finite for
    logits of any size (a log-sum-exp) and its gradient a softmax: dloss/dl_i =
    -softmax(l)_i. The batch estimate is biased by that division, as every self-normalized
    importance weight is.
    """
    n = fake_logits.shape[0]
    return jnp.log(n) - jax.nn.logsumexp(fake_logits)


def hinge_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (the hinge loss of SNGAN, Miyato et al. 2018)."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E[D(G(z))]: G's side of the hinge game (Lim & Ye 2017; Miyato et al. 2018)."""
    return -jnp.mean(fake_logits)


def least_squares_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2] (Mao et al. 2017, Eq. 9 with a = 0, b = 1)."""
    return 0.5 * jnp.mean(jnp.square(real_logits - 1.0)) + 0.5 * jnp.mean(jnp.square(fake_logits))


def least_squares_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """1/2 E[(D(G(z)) - 1)^2] (Mao et al. 2017, Eq. 9 with c = 1)."""
    return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


def wasserstein_discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """E[D(G(z))] - E[D(x)]: the critic's loss (Arjovsky et al. 2017, Algorithm 1)."""
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E[D(G(z))] (Arjovsky et al. 2017); the same function as ``hinge_generator_loss``."""
    return -jnp.mean(fake_logits)


GENERATOR_LOSSES: dict[str, Callable[..., jax.Array]] = {
    "minimax": minimax_generator_loss,
    "nonsaturating": nonsaturating_generator_loss,
    "forward_kl": forward_kl_generator_loss,
    "hinge": hinge_generator_loss,
    "least_squares": least_squares_generator_loss,
    "wasserstein": wasserstein_generator_loss,
}

DISCRIMINATOR_LOSSES: dict[str, Callable[..., jax.Array]] = {
    "cross_entropy": cross_entropy_discriminator_loss,
    "hinge": hinge_discriminator_loss,
    "least_squares": least_squares_discriminator_loss,
    "wasserstein": wasserstein_discriminator_loss,
}


def generator_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the generator loss called ``name``: ``"minimax"``, ``"nonsaturating"``,
    ``"forward_kl"``, ``"hinge"``, ``"least_squares"`` or ``"wasserstein"``."""
    return _by_name(GENERATOR_LOSSES, "generator", name)


def discriminator_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the discriminator loss called ``name``: ``"cross_entropy"`` (Eq. 1),
    ``"hinge"``, ``"least_squares"`` or ``"wasserstein"``."""
    return _by_name(DISCRIMINATOR_LOSSES, "discriminator", name)


def _by_name(table: dict[str, Callable[..., jax.Array]], player: str, name: str):
    if name not in table:
        raise ValueError(f"unknown {player} loss {name!r}: choose one of {', '.join(table)}")
    return table[name]


def safe_norm(x: jax.Array, axis) -> jax.Array:
    """The Euclidean norm over ``axis`` with a finite gradient everywhere.

    ``sqrt`` has an infinite derivative at 0, so ``jnp.linalg.norm`` of a zero vector has a NaN
    gradient (the failure of pytorch#2534 in WGAN-GP). Here the norm of a zero vector is 0 with
    gradient 0 (the double ``where`` keeps the unused branch's NaN out of the backward pass).
    """
    squared = jnp.sum(jnp.square(x), axis=axis)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _input_gradients(critic: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """d critic(x)_i / d x_i for every row i, ``[batch, ...]``: one backward pass of the sum,
    exact because D treats the rows of a batch independently (no batch statistics)."""
    return jax.grad(lambda x: jnp.sum(critic(x)))(x)


def r1_penalty(critic: Callable[[jax.Array], jax.Array], real_images: jax.Array) -> jax.Array:
    """E_x ||grad_x D(x)||^2 on real data: R1 (Mescheder et al. 2018, Eq. 9, without its
    factor gamma / 2, which the caller applies).

    Args:
      critic: images ``[batch, ...]`` -> D's logits ``[batch]`` (D's parameters closed over, so
        that differentiating the penalty in them gives the gradient-penalty's gradient).
      real_images: a data minibatch ``[batch, ...]``.
    """
    grads = _input_gradients(critic, real_images)
    return jnp.mean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1))


def gradient_penalty(
    critic: Callable[[jax.Array], jax.Array],
    real_images: jax.Array,
    fake_images: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """E[(||grad D(x_hat)|| - 1)^2] at x_hat = e x + (1 - e) G(z), e ~ U(0, 1) per row: the
    gradient penalty of WGAN-GP (Gulrajani et al. 2017, Algorithm 1), without its weight
    lambda. The norm is ``safe_norm``: finite gradients where D's input gradient vanishes.
    """
    eps = jax.random.uniform(key, (real_images.shape[0],) + (1,) * (real_images.ndim - 1))
    mixed = eps * real_images + (1.0 - eps) * fake_images
    grads = _input_gradients(critic, mixed)
    norms = safe_norm(grads.reshape(grads.shape[0], -1), axis=1)
    return jnp.mean(jnp.square(norms - 1.0))
