"""Differentiable augmentation of what D sees (DiffAugment, Zhao et al. 2020).

D is shown real and generated images through the same random transformation, in both
players' updates, and the transformation is differentiable, so G's gradient passes through it.
On a small data set this keeps D from memorizing the training images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_translate(key: jax.Array, images: jax.Array, max_shift: int, fill: float) -> jax.Array:
    """Shifts every image by its own random offset of up to ``max_shift`` pixels per axis.

    Image ``i`` moves by ``(dy, dx)``, each drawn uniformly from ``-max_shift..max_shift``:
    output pixel ``(y, x)`` is input pixel ``(y - dy, x - dx)``, or ``fill`` where that lies
    outside the image.

    Args:
      key: the PRNG key of the offsets.
      images: ``[batch, height, width, channels]``.
      max_shift: the largest shift; 0 returns ``images`` unchanged.
      fill: the value of the uncovered border (the background, e.g. ``output_range[0]``).

    Returns:
      the shifted images, same shape and dtype.
    """
    if max_shift == 0:
        return images
    batch, height, width, channels = images.shape
    s = max_shift
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), constant_values=fill)
    shifts = jax.random.randint(key, (batch, 2), -s, s + 1)
    # Output (y, x) = padded (y + s - dy, x + s - dx): a window starting at s - shift.
    starts = s - shifts

    def window(image, start):
        return jax.lax.dynamic_slice(image, (start[0], start[1], 0), (height, width, channels))

    return jax.vmap(window)(padded, starts)
