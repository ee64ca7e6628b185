"""Clusters of unlabelled training images, for self-conditioned GANs.

A self-conditioned GAN (Liu et al. 2020, "Diverse Image Generation via Self-Conditioned
GANs") trains G(z, c) and D(x, c) on cluster ids ``c`` of the training images in place of
class labels: k-means on features of the images, re-run during training on D's own features,
each new clustering's ids matched to the previous ones so that the conditioning keeps its
meaning; generated batches draw ``c`` with the clusters' empirical frequencies, so the model
is one of p(x) = sum_c p(c) p(x | c) and sampling needs no label. Nothing here sees a label.

Everything is a pure function of its inputs and a key, so a run that recomputes a clustering
gets the same one bit for bit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize


def _squared_distances(x: jax.Array, centers: jax.Array) -> jax.Array:
    """``||x_i - c_j||^2`` ``[n, k]``, clipped at 0 (the expansion can round below it)."""
    dots = x @ centers.T
    return jnp.maximum(
        jnp.sum(x * x, axis=1, keepdims=True) - 2.0 * dots
        + jnp.sum(centers * centers, axis=1)[None, :],
        0.0,
    )


def _kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next center is a point drawn with
    probability proportional to its squared distance to the nearest center so far."""
    n = x.shape[0]
    keys = jax.random.split(key, k)
    first = jax.random.randint(keys[0], (), 0, n)
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
    nearest = jnp.sum((x - x[first][None, :]) ** 2, axis=1)

    def add(i, carry):
        centers, nearest = carry
        # log(0) = -inf: points already chosen are never drawn again.
        index = jax.random.categorical(keys[i], jnp.log(nearest))
        centers = centers.at[i].set(x[index])
        nearest = jnp.minimum(nearest, jnp.sum((x - x[index][None, :]) ** 2, axis=1))
        return centers, nearest

    centers, _ = jax.lax.fori_loop(1, k, add, (centers, nearest))
    return centers


@functools.partial(jax.jit, static_argnames=("k", "iterations"))
def _lloyd(key, x, k: int, iterations: int, init):
    centers = _kmeans_plus_plus(key, x, k) if init is None else init.astype(x.dtype)

    def step(_, centers):
        distances = _squared_distances(x, centers)
        assign = jnp.argmin(distances, axis=1)
        counts = jnp.zeros((k,), x.dtype).at[assign].add(1.0)
        sums = jnp.zeros_like(centers).at[assign].add(x)
        means = sums / jnp.maximum(counts, 1.0)[:, None]
        # An empty cluster restarts at one of the points farthest from their centers (the
        # r-th empty one at the r-th farthest), so every cluster keeps some images.
        empty = counts == 0
        farthest = jnp.argsort(-jnp.min(distances, axis=1))[:k]
        rank = jnp.cumsum(empty) - 1
        return jnp.where(empty[:, None], x[farthest[jnp.clip(rank, 0, k - 1)]], means)

    centers = jax.lax.fori_loop(0, iterations, step, centers)
    distances = _squared_distances(x, centers)
    assign = jnp.argmin(distances, axis=1)
    inertia = jnp.sum(jnp.min(distances, axis=1))
    return centers, assign.astype(jnp.int32), inertia


def kmeans(key: jax.Array, x, k: int, *, iterations: int = 50, restarts: int = 1,
           init=None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (or from ``init``).

    Args:
      key: seeds the k-means++ draws (restart ``r`` uses ``fold_in(key, r)``).
      x: float ``[n, d]`` points.
      k: number of clusters, at most ``n``.
      iterations: Lloyd iterations (assign to the nearest center, move each center to its
        points' mean; an empty cluster restarts at a far point).
      restarts: independent seedings; the one with the least inertia (sum of squared
        distances to the assigned centers) is kept.
      init: optional float ``[k, d]`` starting centers (then ``restarts`` is 1).

    Returns:
      ``(centers [k, d] float32, assignments [n] int32)``.

    Raises:
      ValueError: ``k`` outside ``[1, n]``, or ``init`` of the wrong shape.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"kmeans needs points [n, d], got shape {x.shape}")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be in [1, {x.shape[0]}] (the number of points), got {k}")
    if init is not None:
        init = jnp.asarray(init, jnp.float32)
        if init.shape != (k, x.shape[1]):
            raise ValueError(f"init must be centers [{k}, {x.shape[1]}], got {init.shape}")
        restarts = 1
    best = None
    for r in range(restarts):
        centers, assign, inertia = _lloyd(jax.random.fold_in(key, r), x, k, iterations, init)
        if best is None or float(inertia) < best[2]:
            best = (centers, assign, float(inertia))
    return np.asarray(best[0]), np.asarray(best[1])


def principal_components(key: jax.Array, x, dims: int, *, power_iterations: int = 2) -> np.ndarray:
    """``x`` centred and projected on its ``dims`` leading principal directions, by a
    randomized SVD (Halko, Martinsson & Tropp 2011, Algorithm 4.4): float32 ``[n, dims]``.

    ``dims`` at or above ``x``'s dimension returns the centred ``x`` itself.
    """
    x = jnp.asarray(x, jnp.float32)
    x = x - jnp.mean(x, axis=0, keepdims=True)
    if dims >= x.shape[1]:
        return np.asarray(x)
    return np.asarray(_randomized_projection(key, x, dims, power_iterations))


@functools.partial(jax.jit, static_argnames=("dims", "power_iterations"))
def _randomized_projection(key, x, dims: int, power_iterations: int):
    sketch = min(dims + 10, x.shape[1])
    q, _ = jnp.linalg.qr(x @ jax.random.normal(key, (x.shape[1], sketch), x.dtype))
    for _ in range(power_iterations):
        q, _ = jnp.linalg.qr(x.T @ q)
        q, _ = jnp.linalg.qr(x @ q)
    _, _, vt = jnp.linalg.svd(q.T @ x, full_matrices=False)
    return x @ vt[:dims].T


def match_clusters(previous, new, k: int) -> np.ndarray:
    """``new`` cluster ids renamed to agree with ``previous`` as much as possible.

    The renaming is the permutation of ``0..k-1`` that maximizes the number of points whose
    new id equals their previous one (a linear assignment on the ``[k, k]`` overlap counts,
    solved exactly by ``scipy.optimize.linear_sum_assignment``), so that a re-clustering
    changes the meaning of each id as little as it can.

    Args:
      previous, new: int ``[n]`` assignments in ``[0, k)`` of the same points.
      k: the number of clusters.

    Returns:
      int32 ``[n]``: ``new`` with its ids renamed.
    """
    previous, new = np.asarray(previous), np.asarray(new)
    if previous.shape != new.shape:
        raise ValueError(f"assignments of different points: {previous.shape} and {new.shape}")
    overlap = np.zeros((k, k), np.int64)
    np.add.at(overlap, (new, previous), 1)
    rows, columns = scipy.optimize.linear_sum_assignment(overlap, maximize=True)
    rename = np.empty(k, np.int32)
    rename[rows] = columns
    return rename[new]


def cluster_counts(assignments, k: int) -> np.ndarray:
    """How many points each of the ``k`` clusters holds: int64 ``[k]``."""
    return np.bincount(np.asarray(assignments), minlength=k)[:k]


def stratified_labels(counts, num: int) -> np.ndarray:
    """``num`` cluster ids in proportion to ``counts``, sorted: id ``j`` appears for the
    quantiles ``(i + 1/2) / num`` that fall in its share of the cumulative frequencies (a
    draw from p(c) = counts / sum(counts) with the least sampling noise). int32 ``[num]``."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or counts.min() < 0 or counts.sum() <= 0:
        raise ValueError(f"counts must be [k] non-negative numbers with a positive sum, got {counts}")
    edges = np.cumsum(counts) / counts.sum()
    quantiles = (np.arange(num) + 0.5) / num
    return np.minimum(np.searchsorted(edges, quantiles, side="right"), len(counts) - 1).astype(
        np.int32
    )
