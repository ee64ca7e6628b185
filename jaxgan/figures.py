"""The paper's Figures 2 and 3 for any trained generator (Goodfellow et al. 2014, Section 6).

* Figure 2: rows of fair random samples whose rightmost column is the nearest training
  example (Euclidean distance in pixels) of the sample beside it, "to demonstrate that the
  model has not memorized the training set": ``nearest_neighbor_rows``.
* Figure 3: "digits obtained by linearly interpolating between coordinates in z space of the
  full model": ``linear_interpolation`` gives the noise vectors of each walk.

Both work on arrays; ``jaxgan.trainer.load_sampler`` turns a workdir into the function from
noise to images that they need, and ``python -m experiments.mnist figures`` writes the PNGs.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxgan.eval.metrics import nearest_neighbors


def nearest_neighbor_rows(samples: np.ndarray, training: np.ndarray) -> np.ndarray:
    """Figure 2's layout: ``samples`` ``[rows, columns, *image]`` with one more column
    holding, in each row, the training image nearest to that row's last sample.

    Args:
      samples: generated images in [0, 1], ``[rows, columns, *image]`` (``image`` is
        ``(h, w)`` or ``(h, w, c)``).
      training: the training images in [0, 1], ``[N, *image]``.

    Returns:
      float32 ``[rows, columns + 1, *image]``.
    """
    samples = np.asarray(samples, np.float32)
    training = np.asarray(training, np.float32)
    if samples.ndim < 4 or samples.ndim != training.ndim + 1 or samples.shape[2:] != training.shape[1:]:
        raise ValueError(
            f"samples [rows, columns, *image] and training [N, *image] of one image shape, got "
            f"{list(samples.shape)} and {list(training.shape)}"
        )
    indices, _ = nearest_neighbors(samples[:, -1], training)
    return np.concatenate([samples, training[indices][:, None]], axis=1)


def linear_interpolation(start: jnp.ndarray, end: jnp.ndarray, steps: int) -> jnp.ndarray:
    """Noise vectors on the segments from ``start`` to ``end`` (both ``[rows, latent_dim]``):
    ``[rows, steps, latent_dim]``, the first and last of each row the endpoints."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
    return (1.0 - t) * start[:, None, :] + t * end[:, None, :]
