"""Sample-quality metrics for generated digits, as pure functions of arrays.

Each function takes NumPy-compatible arrays and returns NumPy values; the heavy ones (Parzen
windows, nearest neighbours) work in float64 in batches, so that 10,000 x 10,000 digits of
784 pixels fit in a few hundred MB and take about a minute on two CPU cores.

* ``frechet_distance`` / ``frechet_distance_from_activations``: the Frechet (2-Wasserstein)
  distance between Gaussians fitted to two sets of activations (FID, Heusel et al. 2017).
* ``classifier_score``: the Inception Score of Salimans et al. 2016 with an MNIST classifier.
* ``class_histogram`` / ``rarest_class_share``: mode coverage of the predicted classes.
* ``parzen_log_likelihood`` / ``select_parzen_sigma`` / ``parzen_window_evaluation``: the
  Parzen-window log-likelihood of Goodfellow et al. 2014 (Section 5, Table 1), following
  Breuleux et al. 2011.
* ``nearest_neighbor_distances`` / ``memorization_check``: how close generated digits lie to
  their nearest training digit, against the same for held-out real digits.
* ``precision_recall`` (Kynkaanniemi et al. 2019) and ``coverage`` (Naeem et al. 2020): how
  much of the generated set lies on the real manifold and how much of the real manifold it
  reaches, from k-nearest-neighbour balls in any feature space.

* ``stacked_modes``: modes covered out of 1,000 and the KL divergence to uniform of Stacked
  MNIST samples (VEEGAN's and PacGAN's mode-collapse measure).

None of them is tied to digits: they take arrays of images or of features from any feature
function (the evaluation classifier's penultimate layer is one).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

import numpy as np
import scipy.special

# The sigma grid of Goodfellow et al. 2014's ``parzen_ll.py``: numpy.logspace(-1, 0, 10).
GOODFELLOW_SIGMAS = tuple(float(s) for s in np.logspace(-1.0, 0.0, 10))


# ---------------------------------------------------------------------------------------------
# Frechet distance


def gaussian_statistics(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``[d]`` and unbiased covariance ``[d, d]`` (float64) of ``activations [n, d]``."""
    activations = np.asarray(activations, np.float64)
    if activations.ndim != 2 or len(activations) < 2:
        raise ValueError(f"need activations [n >= 2, d], got shape {activations.shape}")
    mean = activations.mean(axis=0)
    centred = activations - mean
    covariance = centred.T @ centred / (len(activations) - 1)
    return mean, covariance


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix, by eigendecomposition.

    Eigenvalues that rounding made slightly negative are clipped to zero, which is what makes
    this stable where ``scipy.linalg.sqrtm`` of a product of covariances can return complex
    values or NaN for singular (rank-deficient) covariances.
    """
    matrix = (matrix + matrix.T) / 2.0
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray
) -> float:
    """The Frechet distance between N(mean1, cov1) and N(mean2, cov2) (Heusel et al. 2017).

    d^2 = ||mean1 - mean2||^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))   (Dowson & Landau 1982)

    ``Tr((cov1 cov2)^(1/2))`` is computed as ``Tr((S cov2 S)^(1/2))`` with ``S = cov1^(1/2)``:
    the two matrices are similar, and the second is symmetric PSD, so both square roots come
    from ``eigh`` in float64 (the approach of TF-GAN's ``trace_sqrt_product``). The result is
    clipped at zero against rounding.

    Args:
      mean1, mean2: means ``[d]``.
      cov1, cov2: covariances ``[d, d]`` (symmetric PSD).

    Returns:
      The squared Frechet distance, as FID reports it.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape or cov1.shape != 2 * mean1.shape:
        raise ValueError(
            f"shapes do not fit: means {mean1.shape}, {mean2.shape}; "
            f"covariances {cov1.shape}, {cov2.shape}"
        )
    sqrt1 = _psd_sqrt(cov1)
    middle = _psd_sqrt(sqrt1 @ cov2 @ sqrt1)
    diff = mean1 - mean2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(middle)
    return float(max(value, 0.0))


def frechet_distance_from_activations(real: np.ndarray, generated: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two activation sets ``[n, d]``.

    With the classifier's penultimate features this is the "classifier FID" (FID of Heusel
    et al. 2017 with an MNIST network in place of Inception-v3); with its 10 logits it is
    TF-GAN's ``tfgan.eval.frechet_classifier_distance_from_activations`` on logits. Means and
    unbiased covariances (``n - 1``) are taken in float64, as in both reference codes.
    """
    return frechet_distance(*gaussian_statistics(real), *gaussian_statistics(generated))


# ---------------------------------------------------------------------------------------------
# Classifier score and class coverage


def classifier_score(logits: np.ndarray, *, num_splits: int = 1) -> tuple[float, float]:
    """The classifier score exp(E_x[KL(p(y|x) || p(y))]) (Salimans et al. 2016, Section 4).

    The Inception Score with an MNIST classifier: high when each digit is classified
    confidently (low-entropy p(y|x)) and the classes are diverse (high-entropy marginal
    p(y) = E_x p(y|x)). It lies in [1, num_classes]: 1 when every digit gets the same
    prediction, num_classes for confident predictions spread evenly over the classes.

    Following Salimans et al. (and the ``inception_score`` of TF-GAN), the samples are cut
    into ``num_splits`` equal consecutive parts and the score is computed on each, with
    p(y) taken within the part; the mean and standard deviation over parts are returned.
    Each part must be a random sample, so pass samples in random order (a generator's are;
    a data set sorted by class is not, and would score near 1 per part).

    Args:
      logits: unnormalised log-probabilities ``[n, num_classes]``; log-softmax is applied in
        float64, so certain predictions (probabilities of exactly 0) are handled exactly.
      num_splits: parts to average over (Salimans et al. use 10).

    Returns:
      ``(mean, std)`` of the score over the parts (``std`` is 0 for one part).
    """
    log_probs = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=-1)
    if log_probs.ndim != 2 or len(log_probs) < num_splits:
        raise ValueError(f"need logits [n >= num_splits, classes], got {log_probs.shape}")
    scores = []
    for part in np.array_split(log_probs, num_splits):
        # log p(y) = log mean_x p(y|x), in log space so zero probabilities stay exact.
        log_marginal = scipy.special.logsumexp(part, axis=0) - math.log(len(part))
        probs = np.exp(part)
        # KL(p(y|x) || p(y)) = sum_y p(y|x) (log p(y|x) - log p(y)); terms with p(y|x) = 0
        # contribute 0 (where() avoids 0 * -inf).
        terms = np.where(probs > 0, probs * (part - log_marginal), 0.0)
        scores.append(math.exp(terms.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram(predicted: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """How many samples fall in each class: int ``[num_classes]`` (mode coverage).

    Args:
      predicted: either class indices ``[n]`` (ints) or logits/probabilities
        ``[n, num_classes]``, in which case the most likely class counts.
      num_classes: the number of classes.
    """
    predicted = np.asarray(predicted)
    if predicted.ndim == 2:
        predicted = predicted.argmax(axis=-1)
    if predicted.ndim != 1 or (predicted.size and (predicted.min() < 0
                                                   or predicted.max() >= num_classes)):
        raise ValueError(f"need class indices in [0, {num_classes}) or logits [n, {num_classes}]")
    return np.bincount(predicted.astype(np.int64), minlength=num_classes)


def rarest_class_share(histogram: np.ndarray) -> float:
    """The share of samples in the least frequent class: 1/num_classes when balanced, 0 when a
    class (mode) is missing."""
    histogram = np.asarray(histogram)
    total = histogram.sum()
    if total <= 0:
        raise ValueError("the histogram is empty")
    return float(histogram.min() / total)


def mean_confidence(logits: np.ndarray) -> float:
    """The classifier's mean confidence: the mean over samples of the largest softmax
    probability. Near 1 for clear digits (real MNIST test digits score about 0.99 with a
    good classifier), 1/num_classes for images it cannot place at all."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    return float(probabilities.max(axis=-1).mean())


# ---------------------------------------------------------------------------------------------
# Squared distances in batches (shared by the Parzen window and the nearest neighbours)


def _flatten64(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, np.float64)
    return images.reshape((images.shape[0], -1))


def _squared_distances(
    queries: np.ndarray, references: np.ndarray, batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields ``(start, d2)`` with ``d2[i, j] = ||queries[start + i] - references[j]||^2``.

    Uses ||q||^2 + ||r||^2 - 2 q.r (one matrix product per batch) in float64; with pixel
    values in [0, 1] and 784 pixels the rounding error is ~1e-13, far below any distance
    that matters. Negative rounding is clipped to 0.
    """
    q, r = _flatten64(queries), _flatten64(references)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"dimension mismatch: {q.shape[1]} vs {r.shape[1]}")
    r_norms = np.einsum("ij,ij->i", r, r)
    for start in range(0, len(q), batch_size):
        chunk = q[start : start + batch_size]
        d2 = np.einsum("ij,ij->i", chunk, chunk)[:, None] + r_norms[None, :] - 2.0 * chunk @ r.T
        yield start, np.maximum(d2, 0.0)


# ---------------------------------------------------------------------------------------------
# Parzen-window log-likelihood (Goodfellow et al. 2014, Section 5; Breuleux et al. 2011)


def _parzen_from_squared_distances(d2: np.ndarray, sigma: float, dim: int) -> np.ndarray:
    # log p(x) = log (1/N) sum_i N(x; mu_i, sigma^2 I)
    #          = logsumexp_i(-||x - mu_i||^2 / (2 sigma^2)) - log N - dim * log(sigma sqrt(2 pi))
    # logsumexp subtracts the max first, so no exp underflows to a log(0).
    exponents = d2 * (-0.5 / sigma**2)
    return (
        scipy.special.logsumexp(exponents, axis=1)
        - math.log(d2.shape[1])
        - dim * math.log(sigma * math.sqrt(2.0 * math.pi))
    )


def parzen_log_likelihood(
    x: np.ndarray, centres: np.ndarray, sigma: float, *, batch_size: int = 500
) -> np.ndarray:
    """The log-density of each ``x`` under a Gaussian Parzen window on ``centres``, in nats.

    p(x) = (1/N) sum_i N(x; centres_i, sigma^2 I) in the flattened pixel space: the estimator
    of Breuleux et al. 2011 that Goodfellow et al. 2014 (Section 5, Table 1) fit to 10,000
    generator samples. Computed in float64 with logsumexp, in batches of ``batch_size``
    rows of ``x`` (memory ``batch_size * N * 8`` bytes).

    Args:
      x: the points to score, ``[n, ...]`` (images in [0, 1] for the paper's numbers).
      centres: the kernel centres (the generated samples), ``[N, ...]``, same trailing shape.
      sigma: the kernel standard deviation (same units as the pixels).
      batch_size: rows of ``x`` per batch.

    Returns:
      float64 ``[n]``: log p(x) for each row.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    dim = _flatten64(centres[:1]).shape[1]
    out = np.empty(len(x), np.float64)
    for start, d2 in _squared_distances(x, centres, batch_size):
        out[start : start + len(d2)] = _parzen_from_squared_distances(d2, sigma, dim)
    return out


def select_parzen_sigma(
    validation: np.ndarray,
    centres: np.ndarray,
    sigmas=GOODFELLOW_SIGMAS,
    *,
    batch_size: int = 500,
) -> tuple[float, np.ndarray]:
    """Chooses sigma by grid search: the one maximising the mean validation log-likelihood.

    This is ``cross_validate_sigma`` of Goodfellow et al. 2014's ``parzen_ll.py``: for each
    sigma of the grid (there ``numpy.logspace(-1, 0, 10)``), the mean Parzen log-likelihood
    of the validation digits (there 1,000 held-out MNIST training digits), then the argmax.
    The validation set must be disjoint from the test set the final number is reported on.
    The squared distances are computed once and reused for every sigma.

    Args:
      validation: held-out real points ``[n, ...]``.
      centres: the kernel centres ``[N, ...]``.
      sigmas: the grid of candidate sigmas.
      batch_size: rows of ``validation`` per batch.

    Returns:
      ``(best_sigma, mean_log_likelihoods)``, the latter float64 ``[len(sigmas)]``.
    """
    sigmas = np.asarray(sigmas, np.float64)
    if sigmas.ndim != 1 or len(sigmas) == 0 or np.any(sigmas <= 0):
        raise ValueError(f"sigmas must be a non-empty list of positive numbers, got {sigmas}")
    dim = _flatten64(centres[:1]).shape[1]
    totals = np.zeros(len(sigmas), np.float64)
    for _, d2 in _squared_distances(validation, centres, batch_size):
        for i, sigma in enumerate(sigmas):
            totals[i] += _parzen_from_squared_distances(d2, float(sigma), dim).sum()
    means = totals / len(validation)
    return float(sigmas[int(np.argmax(means))]), means


@dataclasses.dataclass(frozen=True)
class ParzenResult:
    """The Parzen-window estimate of Goodfellow et al. 2014, Table 1.

    Attributes:
      mean: mean log p(x) over the test points, in nats.
      stderr: its standard error, ``std(log p) / sqrt(n)`` (numpy's ``std``, as the paper's
        ``parzen_ll.py``).
      sigma: the kernel width used, chosen on the validation set.
      sigmas: the grid searched.
      validation_means: the mean validation log-likelihood for each sigma of the grid.
      num_centres: how many kernel centres (samples).
      num_test: how many test points.
    """

    mean: float
    stderr: float
    sigma: float
    sigmas: tuple[float, ...]
    validation_means: tuple[float, ...]
    num_centres: int
    num_test: int

    @property
    def sigma_on_grid_edge(self) -> bool:
        """True when the best sigma is the smallest or largest of the grid (widen the grid)."""
        return self.sigma in (min(self.sigmas), max(self.sigmas))


def parzen_window_evaluation(
    test: np.ndarray,
    centres: np.ndarray,
    validation: np.ndarray,
    sigmas=GOODFELLOW_SIGMAS,
    *,
    batch_size: int = 500,
) -> ParzenResult:
    """Goodfellow et al. 2014's Table 1 protocol: pick sigma on ``validation``, score ``test``.

    Args:
      test: the test points ``[n, ...]`` (the 10,000 MNIST test digits in [0, 1]).
      centres: the kernel centres ``[N, ...]`` (10,000 generated digits in [0, 1]).
      validation: held-out real points for choosing sigma, disjoint from ``test``.
      sigmas: the sigma grid.
      batch_size: rows per batch.
    """
    sigma, means = select_parzen_sigma(validation, centres, sigmas, batch_size=batch_size)
    log_p = parzen_log_likelihood(test, centres, sigma, batch_size=batch_size)
    return ParzenResult(
        mean=float(log_p.mean()),
        stderr=float(log_p.std() / math.sqrt(len(log_p))),
        sigma=sigma,
        sigmas=tuple(float(s) for s in np.asarray(sigmas)),
        validation_means=tuple(float(m) for m in means),
        num_centres=int(len(centres)),
        num_test=int(len(test)),
    )


# ---------------------------------------------------------------------------------------------
# Memorization


def nearest_neighbor_distances(
    queries: np.ndarray, references: np.ndarray, *, batch_size: int = 500
) -> np.ndarray:
    """The Euclidean distance from each query to its nearest reference: float64 ``[n]``.

    Distances are in the flattened pixel space (784-d for 28x28 digits).
    """
    return nearest_neighbors(queries, references, batch_size=batch_size)[1]


def nearest_neighbors(
    queries: np.ndarray, references: np.ndarray, *, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest reference by Euclidean distance in pixels (float64):
    ``(indices int64 [n], distances float64 [n])``; ties go to the lowest index."""
    indices = np.empty(len(queries), np.int64)
    distances = np.empty(len(queries), np.float64)
    for start, d2 in _squared_distances(queries, references, batch_size):
        nearest = d2.argmin(axis=1)
        indices[start : start + len(d2)] = nearest
        distances[start : start + len(d2)] = np.sqrt(d2[np.arange(len(d2)), nearest])
    return indices, distances


def nearest_other_distances(points: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
    """The Euclidean distance from each point to its nearest *other* point of the same set:
    float64 ``[n]`` (``n >= 2``; a duplicate point gives 0)."""
    if len(points) < 2:
        raise ValueError(f"nearest_other_distances needs at least 2 points, got {len(points)}")
    distances = np.empty(len(points), np.float64)
    for start, d2 in _squared_distances(points, points, batch_size):
        d2[np.arange(len(d2)), start + np.arange(len(d2))] = np.inf
        distances[start : start + len(d2)] = np.sqrt(d2.min(axis=1))
    return distances


@dataclasses.dataclass(frozen=True)
class ParzenGeometry:
    """Where the Parzen estimate's value comes from: how near the test digits lie to the
    kernel centres, and how spread the centres are.

    At the sigmas the estimate picks for MNIST (~0.17), each test digit's log-likelihood is
    set by its nearest few centres: a digit whose nearest centre is farther by a squared
    distance of d loses about d / (2 sigma^2) nats (18 nats per unit at sigma 0.167). So two
    sets of centres that score differently do so through ``test_nearest_mean_sq`` (how
    closely they reach the test digits) and ``centre_nearest_median`` (how many distinct
    places they cover: centres that bunch together reach fewer test digits).

    Attributes:
      test_nearest_median: median distance from a test digit to its nearest centre.
      test_nearest_mean_sq: mean squared distance from a test digit to its nearest centre.
      centre_nearest_median: median distance from a centre to its nearest other centre.
    """

    test_nearest_median: float
    test_nearest_mean_sq: float
    centre_nearest_median: float


def parzen_geometry(test: np.ndarray, centres: np.ndarray, *, batch_size: int = 500
                    ) -> ParzenGeometry:
    """``ParzenGeometry`` of kernel ``centres`` ``[n, ...]`` against ``test`` ``[m, ...]``
    (pixels in [0, 1], flattened; Euclidean distances in float64)."""
    to_centre = nearest_neighbor_distances(test, centres, batch_size=batch_size)
    return ParzenGeometry(
        test_nearest_median=float(np.median(to_centre)),
        test_nearest_mean_sq=float(np.mean(to_centre**2)),
        centre_nearest_median=float(np.median(nearest_other_distances(centres,
                                                                      batch_size=batch_size))),
    )


@dataclasses.dataclass(frozen=True)
class MemorizationResult:
    """Nearest-training-digit distances of generated digits against held-out real ones.

    Attributes:
      generated_median: median distance from a generated digit to its nearest training digit.
      heldout_median: the same for real digits that were not trained on.
      ratio: ``generated_median / heldout_median``. Near 1: samples are as far from the
        training set as new real digits are. Well below 1: samples sit on top of training
        digits (copies or near-copies). Above 1: samples are off the data manifold.
      generated_near_copy_share: the share of generated digits closer to a training digit
        than the 1st percentile of the held-out distances.
    """

    generated_median: float
    heldout_median: float
    ratio: float
    generated_near_copy_share: float


def memorization_check(
    generated: np.ndarray, train: np.ndarray, heldout: np.ndarray, *, batch_size: int = 500
) -> MemorizationResult:
    """Compares how close generated and held-out real digits lie to the training digits.

    A generator that memorises reproduces its training digits, so its samples lie nearer to
    the training set than fresh real digits do. Nearest-neighbour distances in pixel space are
    the usual copy check for generative models (discussed by Theis et al. 2016, "A note on the
    evaluation of generative models"); comparing against held-out real digits turns them into
    a number with a reference point: the ratio of the two medians.

    Args:
      generated: generated digits ``[n, ...]`` in [0, 1].
      train: the generator's training digits ``[N, ...]``.
      heldout: real digits not in ``train`` (e.g. the test split) ``[m, ...]``.
      batch_size: rows per batch.
    """
    return memorization_from_distances(
        nearest_neighbor_distances(generated, train, batch_size=batch_size),
        nearest_neighbor_distances(heldout, train, batch_size=batch_size),
    )


def memorization_from_distances(
    generated_distances: np.ndarray, heldout_distances: np.ndarray
) -> MemorizationResult:
    """``memorization_check`` from precomputed nearest-training distances (``[n]``, ``[m]``),
    so that the held-out distances can be computed once for several generators."""
    generated_distances = np.asarray(generated_distances, np.float64)
    heldout_distances = np.asarray(heldout_distances, np.float64)
    generated_median = float(np.median(generated_distances))
    heldout_median = float(np.median(heldout_distances))
    threshold = np.percentile(heldout_distances, 1.0)
    return MemorizationResult(
        generated_median=generated_median,
        heldout_median=heldout_median,
        ratio=generated_median / heldout_median if heldout_median > 0 else float("inf"),
        generated_near_copy_share=float(np.mean(generated_distances < threshold)),
    )


# ---------------------------------------------------------------------------------------------
# Manifold metrics in a feature space


def knn_radii(features: np.ndarray, k: int = 3, *, batch_size: int = 500) -> np.ndarray:
    """The distance from each row of ``features [n, d]`` to its ``k``-th nearest other row
    (itself excluded), float64 ``[n]``: the radius of its k-NN ball."""
    features = _flatten64(features)
    if not 1 <= k < len(features):
        raise ValueError(f"k must be in [1, n) for n = {len(features)} features, got {k}")
    radii = np.empty(len(features), np.float64)
    for start, d2 in _squared_distances(features, features, batch_size):
        rows = np.arange(len(d2))
        d2[rows, start + rows] = np.inf  # not its own neighbour
        radii[start : start + len(d2)] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])
    return radii


def _inside_any_ball(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                     batch_size: int) -> np.ndarray:
    """For each query, whether it lies in some ball ``|q - c| <= r_c``: bool ``[n]``."""
    inside = np.empty(len(queries), bool)
    r2 = radii**2
    for start, d2 in _squared_distances(queries, centres, batch_size):
        inside[start : start + len(d2)] = (d2 <= r2[None, :]).any(axis=1)
    return inside


def precision_recall(real: np.ndarray, generated: np.ndarray, *, k: int = 3,
                     batch_size: int = 500) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``generated`` against
    ``real``, both ``[n, d]`` features (or images, flattened).

    Precision: the share of generated rows inside the union of the real rows' k-NN balls
    (how much of what G draws looks real). Recall: the share of real rows inside the union of
    the generated rows' k-NN balls (how much of the data G reaches). The paper uses k = 3.
    """
    real, generated = _flatten64(real), _flatten64(generated)
    precise = _inside_any_ball(generated, real, knn_radii(real, k, batch_size=batch_size),
                               batch_size)
    recalled = _inside_any_ball(real, generated, knn_radii(generated, k, batch_size=batch_size),
                                batch_size)
    return {"precision": float(precise.mean()), "recall": float(recalled.mean()), "k": k,
            "n_real": len(real), "n_generated": len(generated)}


def coverage(real: np.ndarray, generated: np.ndarray, *, k: int = 3,
             batch_size: int = 500) -> float:
    """Coverage (Naeem et al. 2020): the share of real rows whose k-NN ball (among the real
    rows) holds at least one generated row. Unlike recall it is not inflated by a few
    generated outliers with large balls."""
    real, generated = _flatten64(real), _flatten64(generated)
    r2 = knn_radii(real, k, batch_size=batch_size) ** 2
    covered = np.zeros(len(real), bool)
    for start, d2 in _squared_distances(generated, real, batch_size):
        covered |= (d2 <= r2[None, :]).any(axis=0)
    return float(covered.mean())


# ---------------------------------------------------------------------------------------------
# Stacked MNIST modes (Metz et al. 2017; Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN)


def stacked_modes(channel_classes: np.ndarray, num_classes: int = 10) -> dict[str, Any]:
    """The mode statistics of Stacked MNIST samples from the classes of their channels.

    Args:
      channel_classes: int ``[n, channels]``, the class a digit classifier assigns to each
        channel of each sample (three channels: ``num_classes**3`` = 1,000 modes).
      num_classes: classes per channel.

    Returns:
      ``modes``: how many of the ``num_classes**channels`` modes at least one sample hits;
      ``kl_to_uniform``: KL(p || uniform) of the samples' mode histogram p, in nats (0 for
      samples spread evenly over every mode, ``log(num_modes)`` for one mode); ``num_modes``;
      ``num_samples``.
    """
    classes = np.asarray(channel_classes)
    if classes.ndim != 2 or not len(classes) or classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"need class indices [n, channels] in [0, {num_classes}), got "
                         f"shape {classes.shape}")
    channels = classes.shape[1]
    weights = num_classes ** np.arange(channels - 1, -1, -1, dtype=np.int64)
    num_modes = num_classes**channels
    counts = np.bincount(classes.astype(np.int64) @ weights, minlength=num_modes)
    p = counts[counts > 0] / len(classes)
    return {
        "modes": int((counts > 0).sum()),
        "kl_to_uniform": float(np.sum(p * np.log(p * num_modes))),
        "num_modes": int(num_modes),
        "num_samples": int(len(classes)),
    }
