"""GAN losses on discriminator logits (Goodfellow et al. 2014, Eq. 1 and Section 3).

D(x) = sigmoid(logit). Every log-probability is computed as ``log_sigmoid`` of a logit, never
as ``log(sigmoid(.))``, so the losses stay finite for logits of any size:
log D(x) = log_sigmoid(l) and log(1 - D(x)) = log_sigmoid(-l).

All functions take keyword-only logits ``[batch]`` and return float32 scalars (means over the
batch, the Monte-Carlo estimates of the expectations in Eq. 1).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "value_function",
    "discriminator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
    "GENERATOR_LOSSES",
    "generator_loss",
]


def value_function(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] (Goodfellow et al. 2014, Eq. 1).

    Args:
      real_logits: D's logits on data samples x, ``[batch]``.
      fake_logits: D's logits on generated samples G(z), ``[batch]``.
    """
    return jnp.mean(jax.nn.log_sigmoid(real_logits)) + jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def discriminator_loss(*, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-V(D, G): D ascends V (Algorithm 1), i.e. descends this loss."""
    return -value_function(real_logits=real_logits, fake_logits=fake_logits)


def minimax_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """E_z[log(1 - D(G(z)))]: the term of Eq. 1 that G minimizes (the saturating loss)."""
    return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def nonsaturating_generator_loss(*, fake_logits: jax.Array) -> jax.Array:
    """-E_z[log D(G(z))]: Section 3's alternative with strong gradients early in training."""
    return -jnp.mean(jax.nn.log_sigmoid(fake_logits))


GENERATOR_LOSSES: dict[str, Callable[..., jax.Array]] = {
    "minimax": minimax_generator_loss,
    "nonsaturating": nonsaturating_generator_loss,
}


def generator_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the generator loss called ``name`` (a key of ``GENERATOR_LOSSES``)."""
    try:
        return GENERATOR_LOSSES[name]
    except KeyError:
        raise ValueError(
            f"unknown generator loss {name!r}: choose one of {', '.join(GENERATOR_LOSSES)}"
        ) from None
