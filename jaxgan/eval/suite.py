"""The evaluation suite: every metric of ``jaxgan.eval.metrics`` for one set of images.

Written for MNIST's digits and Table 1, it takes any labelled image data: images are
``[n, H, W]`` (one channel) or ``[n, H, W, 3]``, and the classifier is whichever
``TrainedClassifier`` was trained on that data (``jaxgan.eval.classifier``).

``evaluate_samples(samples, reference)`` returns one JSON-ready row for generated digits;
``reference_rows(reference)`` computes the same row, with the same code, for two references:

* ``real``: real training digits standing in for a perfect generator of the training data
  (the floor each metric can reach with this training data);
* ``noise``: uniform noise in [0, 1] (the ceiling of a generator that learned nothing).

What a row holds (all against the test split unless stated):

* ``fid_features``: Frechet distance in the classifier's penultimate features;
* ``fid_logits``: Frechet distance in its logits (TF-GAN's classifier distance);
* ``precision`` / ``recall`` (Kynkaanniemi et al. 2019) and ``coverage`` (Naeem et al.
  2020) in the same features, k = 3; ``num_samples`` and ``num_real`` (the test images) say
  how many images each side had;
* ``classifier_score`` / ``classifier_score_std``: Salimans et al. 2016's score with the
  MNIST classifier, mean and std over ``num_score_splits`` parts;
* ``class_histogram`` / ``rarest_class_share``: predicted classes of the samples;
* ``mean_confidence``: the classifier's mean top softmax probability on the samples;
* ``parzen``: Goodfellow et al. 2014's Parzen-window log-likelihood of the test digits, in
  nats (mean, standard error, the sigma chosen on the validation digits, the grid), and
  where it comes from (``metrics.ParzenGeometry``): the test digits' distances to their
  nearest kernel centre and the centres' distances to their nearest other centre;
* ``memorization``: nearest-training-digit distances of the samples against those of the
  test digits (medians, ratio).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import scipy.ndimage

from jaxgan.eval import metrics
from jaxgan.eval.classifier import TrainedClassifier, classifier_outputs

# Goodfellow et al. 2014 fit the Parzen window to 10,000 generated samples and chose sigma on
# 1,000 validation digits (parzen_ll.py: --num_samples 10000, --limit_size 1000).
PARZEN_CENTRES = 10_000
PARZEN_VALIDATION = 1_000


def _unit_images(images, what: str) -> np.ndarray:
    """float32 ``[n, H, W]`` or ``[n, H, W, 3]`` in [0, 1] from uint8 0..255 or float [0, 1]
    images (``[n, H, W, 1]`` loses its channel axis)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or images.ndim == 4 and images.shape[-1] == 3):
        raise ValueError(f"{what}: expected images [n, H, W] or [n, H, W, 3], got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    images = images.astype(np.float32)
    if images.size and (images.min() < 0.0 or images.max() > 1.0 or not np.isfinite(images).all()):
        raise ValueError(f"{what}: float images must lie in [0, 1]")
    return images


@dataclasses.dataclass(frozen=True)
class EvalData:
    """The real images the metrics compare against, float32 ``[n, H, W]`` (or
    ``[n, H, W, 3]``) in [0, 1]; for MNIST ``[n, 28, 28]``.

    Attributes:
      train: the generator's training digits: the reference of the memorization check.
      validation: real digits for choosing the Parzen sigma, disjoint from ``test`` and from
        ``real``; a subset of ``train`` (as in Goodfellow et al., whose validation digits
        are MNIST training digits, 50,000-60,000). If the generator was trained on them too,
        sigma is chosen on digits it has seen; the test number is still on unseen digits.
      real: the ``real`` reference row's samples: the training digits not in ``validation``
        (at most ``PARZEN_CENTRES`` of them), in a random order.
      test: the test digits (the 10,000 of the MNIST test split).
      test_labels: their labels, int ``[n]``.
    """

    train: np.ndarray
    validation: np.ndarray
    real: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def make_eval_data(
    train_images,
    test_images,
    test_labels,
    *,
    validation_images=None,
    real_images=None,
    num_validation: int = PARZEN_VALIDATION,
    num_real: int = PARZEN_CENTRES,
    seed: int = 0,
) -> EvalData:
    """The ``EvalData`` of ``prepare_reference``'s arguments (see there)."""
    train = _unit_images(train_images, "train_images")
    test = _unit_images(test_images, "test_images")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    if validation_images is None:
        if not 0 < num_validation < len(train):
            raise ValueError(f"num_validation must be in (0, {len(train)}), got {num_validation}")
        validation, rest = train[order[:num_validation]], train[order[num_validation:]]
    else:
        validation, rest = _unit_images(validation_images, "validation_images"), train[order]
    if real_images is not None:
        real = _unit_images(real_images, "real_images")
        rest = real[rng.permutation(len(real))]
    # Kept in shuffled order: data sets are often sorted by class (the embedded digits are),
    # and the classifier score's splits must each be a random sample, as a generator's are.
    real = rest[:num_real]
    for name, images in (("test_images", test), ("validation_images", validation),
                         ("real_images", real)):
        if images.shape[1:] != train.shape[1:]:
            raise ValueError(f"{name} are {list(images.shape[1:])}, the training images "
                             f"{list(train.shape[1:])}: give images of one shape")
    return EvalData(train, validation, real, test, np.asarray(test_labels, np.int64))


@dataclasses.dataclass(frozen=True)
class EvalReference:
    """``EvalData`` with what every row needs from the test digits, computed once.

    Attributes:
      data: the real digits.
      classifier: the trained classifier.
      test_logits: its logits on the test digits ``[n, 10]``.
      test_features: its penultimate features on the test digits ``[n, feature_dim]``.
      test_accuracy: its accuracy on the test digits.
      heldout_distances: distance from each test digit to its nearest training digit ``[n]``.
      seconds: wall time of each preparation part.
    """

    data: EvalData
    classifier: TrainedClassifier
    test_logits: np.ndarray
    test_features: np.ndarray
    test_accuracy: float
    heldout_distances: np.ndarray
    seconds: dict[str, float]


def prepare_reference(
    classifier: TrainedClassifier, train_images, test_images, test_labels, **split
) -> EvalReference:
    """The real images an evaluation compares against, and the classifier's outputs on them.

    Runs the classifier on the test images and searches each one's nearest training image,
    once for every row that ``evaluate_samples`` computes against the result.

    Args:
      classifier: from ``load_or_train_classifier``, trained on images of this data.
      train_images: the generator's training images, uint8 0..255 or float [0, 1],
        ``[N, H, W]`` or ``[N, H, W, C]`` (``[N, 28, 28]`` for MNIST).
      test_images: the test images, same forms.
      test_labels: int ``[n]``.
      **split: optional keywords for how the real images are drawn:

        * ``validation_images``: the images that choose the Parzen sigma (Goodfellow et
          al.: MNIST train rows 50,000-50,999); default: ``num_validation`` training
          images drawn at random.
        * ``real_images``: the images of the ``real`` reference row (e.g. held-out images
          of a larger set); default: the training images not drawn for validation.
        * ``num_validation`` (1,000): how many training images choose the Parzen sigma
          when ``validation_images`` is not given.
        * ``num_real`` (10,000): at most this many images make the ``real`` row (give as
          many as the generator's samples: the Frechet distance is biased by sample size).
        * ``seed`` (0): seeds the permutations that pick them.
    """
    data = make_eval_data(train_images, test_images, test_labels, **split)
    start = time.perf_counter()
    test_logits, test_features = classifier_outputs(classifier, data.test)
    classify_s = time.perf_counter() - start
    start = time.perf_counter()
    heldout = metrics.nearest_neighbor_distances(data.test, data.train)
    return EvalReference(
        data=data,
        classifier=classifier,
        test_logits=test_logits,
        test_features=test_features,
        test_accuracy=float(np.mean(test_logits.argmax(-1) == data.test_labels)),
        heldout_distances=heldout,
        seconds={"classify_test": classify_s, "test_nearest_train": time.perf_counter() - start},
    )


def evaluate_samples(
    samples,
    reference: EvalReference,
    *,
    sigmas=metrics.GOODFELLOW_SIGMAS,
    num_parzen_centres: int = PARZEN_CENTRES,
    num_score_splits: int = 10,
) -> dict[str, Any]:
    """Every metric for ``samples`` against ``reference``: one JSON-ready row.

    Args:
      samples: generated images of the data's shape (``[n, 28, 28]`` or ``[n, 28, 28, 1]``
        for MNIST), float in [0, 1] or uint8. Goodfellow et al.'s protocol uses 10,000.
      reference: from ``prepare_reference``.
      sigmas: the Parzen sigma grid (default: the paper's ``logspace(-1, 0, 10)``).
      num_parzen_centres: the first this many samples are the Parzen kernel centres.
      num_score_splits: parts for the classifier score's mean and std.

    Returns:
      A dict of plain Python numbers and lists (see the module docstring), with ``seconds``
      timing each part.
    """
    samples = _unit_images(samples, "samples")
    data = reference.data
    if samples.shape[1:] != data.test.shape[1:]:
        raise ValueError(f"samples are {list(samples.shape[1:])}, the data "
                         f"{list(data.test.shape[1:])}: give samples of the data's shape")
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    logits, features = classifier_outputs(reference.classifier, samples)
    seconds["classify"] = time.perf_counter() - start

    start = time.perf_counter()
    fid_features = metrics.frechet_distance_from_activations(reference.test_features, features)
    fid_logits = metrics.frechet_distance_from_activations(reference.test_logits, logits)
    seconds["frechet"] = time.perf_counter() - start

    start = time.perf_counter()
    manifold = metrics.precision_recall(reference.test_features, features)
    covered = metrics.coverage(reference.test_features, features)
    seconds["precision_recall"] = time.perf_counter() - start

    score, score_std = metrics.classifier_score(
        logits, num_splits=min(num_score_splits, len(samples))
    )
    confidence = metrics.mean_confidence(logits)
    histogram = metrics.class_histogram(logits, logits.shape[-1])

    start = time.perf_counter()
    parzen = metrics.parzen_window_evaluation(
        data.test, samples[:num_parzen_centres], data.validation, sigmas
    )
    seconds["parzen"] = time.perf_counter() - start

    start = time.perf_counter()
    geometry = metrics.parzen_geometry(data.test, samples[:num_parzen_centres])
    seconds["parzen_geometry"] = time.perf_counter() - start

    start = time.perf_counter()
    memorization = metrics.memorization_from_distances(
        metrics.nearest_neighbor_distances(samples, data.train), reference.heldout_distances
    )
    seconds["memorization"] = time.perf_counter() - start

    return {
        "num_samples": int(len(samples)),
        "num_real": int(len(reference.test_features)),  # the test digits: FID, P/R, coverage
        "fid_features": fid_features,
        "fid_logits": fid_logits,
        "classifier_score": score,
        "classifier_score_std": score_std,
        "class_histogram": [int(c) for c in histogram],
        "rarest_class_share": metrics.rarest_class_share(histogram),
        "mean_confidence": confidence,
        "precision": manifold["precision"],  # Kynkaanniemi et al. 2019, k = 3, features
        "recall": manifold["recall"],
        "coverage": covered,  # Naeem et al. 2020, k = 3, features
        "parzen": {
            **dataclasses.asdict(parzen),
            "sigma_on_grid_edge": parzen.sigma_on_grid_edge,
            **dataclasses.asdict(geometry),
        },
        "memorization": dataclasses.asdict(memorization),
        "seconds": seconds,
    }


def reference_rows(
    reference: EvalReference, *, seed: int = 0, num_noise: int = PARZEN_CENTRES, **kwargs
) -> dict[str, dict[str, Any]]:
    """The ``real`` and ``noise`` rows, by ``evaluate_samples`` (``kwargs`` go to it).

    ``real`` uses ``reference.data.real`` as the samples. Those are training digits, so its
    memorization distances are 0 by construction: the value of a generator that copies its
    training set. Its Parzen window has only as many centres as there are such digits
    (4,000 with the 5,000 embedded digits, against 10,000 generated samples), which lowers
    its log-likelihood relative to a 10,000-sample generator.

    ``noise`` is ``num_noise`` images of independent uniform [0, 1] pixels drawn with
    ``numpy.random.default_rng(seed)``.
    """
    shape = (num_noise,) + reference.data.test.shape[1:]
    noise = np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)
    return {
        "real": evaluate_samples(reference.data.real, reference, **kwargs),
        "noise": evaluate_samples(noise, reference, **kwargs),
    }


# What the Parzen estimate rewards, on real digits: (name, what it does to the images).
PARZEN_PROBES = (
    ("as they are", "the real digits themselves"),
    ("blurred 0.5 px", "a Gaussian blur of 0.5 pixels (scipy.ndimage.gaussian_filter)"),
    ("blurred 1.0 px", "a Gaussian blur of 1 pixel"),
    ("binarized at 0.5", "each pixel set to 0 or 1 (sharper strokes than MNIST's)"),
    ("shifted 1 px", "each digit moved by one pixel up, down, left or right"),
    ("half as many", "only the first half of the digits as centres (fewer distinct modes)"),
)


def _probe_images(name: str, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``images`` (float [n, H, W(, C)] in [0, 1]) changed as the probe ``name`` says."""
    if name == "as they are":
        return images
    if name.startswith("blurred"):
        sigma = float(name.split()[1])
        spatial = (0, sigma, sigma) + (0,) * (images.ndim - 3)  # H and W only
        return np.clip(scipy.ndimage.gaussian_filter(images, spatial, mode="constant"), 0, 1)
    if name == "binarized at 0.5":
        return (images > 0.5).astype(images.dtype)
    if name == "shifted 1 px":
        out = np.zeros_like(images)
        moves = rng.integers(0, 4, len(images))  # up, down, left, right; zeros come in
        out[moves == 0, :-1] = images[moves == 0, 1:]
        out[moves == 1, 1:] = images[moves == 1, :-1]
        out[moves == 2, :, :-1] = images[moves == 2, :, 1:]
        out[moves == 3, :, 1:] = images[moves == 3, :, :-1]
        return out
    if name == "half as many":
        return images[: len(images) // 2]
    raise ValueError(f"unknown Parzen probe {name!r}")


def parzen_probes(
    reference: EvalReference, samples=None, *, seed: int = 0, sigmas=metrics.GOODFELLOW_SIGMAS,
) -> dict[str, dict[str, Any]]:
    """How far simple changes to the kernel centres move Goodfellow et al.'s Parzen estimate.

    The real digits of ``reference.data.real`` (and, if given, ``samples``) are changed as
    each entry of ``PARZEN_PROBES`` says and scored exactly as ``evaluate_samples`` scores a
    generator (sigma chosen on ``reference.data.validation``, the test digits scored). It
    shows what the estimate rewards beyond sample quality (Theis et al. 2016, "A note on the
    evaluation of generative models"): blurring the real digits raises it, sharpening or
    moving them by a pixel lowers it, and fewer distinct centres lower it. A diagnostic of the
    metric: a changed generator's number is not that generator's result.

    Args:
      reference: from ``prepare_reference``.
      samples: optional generated images (the data's shape, float in [0, 1] or uint8).
      seed: seeds the shifts' directions.
      sigmas: the sigma grid.

    Returns:
      ``{"real": {probe: row}, "generator": {probe: row}}`` (``generator`` only with
      ``samples``); a row holds ``mean``, ``stderr``, ``sigma`` and ``num_centres``.
    """
    sets = {"real": reference.data.real}
    if samples is not None:
        sets["generator"] = _unit_images(samples, "samples")
    out: dict[str, dict[str, Any]] = {}
    for what, images in sets.items():
        rng = np.random.default_rng(seed)
        images = images[:PARZEN_CENTRES].astype(np.float32)
        out[what] = {}
        for name, _ in PARZEN_PROBES:
            centres = _probe_images(name, images, rng)
            result = metrics.parzen_window_evaluation(
                reference.data.test, centres, reference.data.validation, sigmas)
            out[what][name] = {"mean": result.mean, "stderr": result.stderr,
                               "sigma": result.sigma, "num_centres": result.num_centres}
    return out


def classifier_features(classifier: TrainedClassifier) -> Callable[[np.ndarray], np.ndarray]:
    """A feature function: images ``[n, H, W(, C)]`` in [0, 1] -> the classifier's penultimate
    features ``[n, feature_dim]`` (the features of the classifier FID)."""
    return lambda images: classifier_outputs(classifier, images)[1]


def feature_metrics(
    features: Callable[[np.ndarray], np.ndarray],
    real,
    generated,
    *,
    k: int = 3,
) -> dict[str, Any]:
    """The feature-space metrics of ``generated`` against ``real`` images through any feature
    function (``classifier_features``, or a user's own network): the Frechet distance
    (Heusel et al. 2017), precision and recall (Kynkaanniemi et al. 2019) and coverage
    (Naeem et al. 2020), with how many images each side had.

    Args:
      features: images float ``[n, ...]`` in [0, 1] -> ``[n, d]``.
      real: the reference images (uint8 0..255 or float [0, 1]); use as many as ``generated``
        (the Frechet distance is biased by the sample size).
      generated: the generator's images, the same shape.
      k: the neighbourhood size of precision, recall and coverage.
    """
    real, generated = _unit_images(real, "real"), _unit_images(generated, "generated")
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(f"real images {list(real.shape[1:])} and generated "
                         f"{list(generated.shape[1:])} differ in shape")
    real_f, generated_f = np.asarray(features(real)), np.asarray(features(generated))
    manifold = metrics.precision_recall(real_f, generated_f, k=k)
    return {
        "frechet_distance": metrics.frechet_distance_from_activations(real_f, generated_f),
        "precision": manifold["precision"],
        "recall": manifold["recall"],
        "coverage": metrics.coverage(real_f, generated_f, k=k),
        "k": k,
        "n_real": int(len(real)),
        "n_generated": int(len(generated)),
    }


def stacked_mnist_modes(classifier: TrainedClassifier, samples) -> dict[str, Any]:
    """Stacked MNIST's mode metric for ``samples`` ``[n, 28, 28, 3]`` (VEEGAN, PacGAN): each
    channel classified by the one-channel digit ``classifier``, then ``metrics.stacked_modes``
    (modes covered out of 1,000, KL divergence of the mode histogram to uniform)."""
    samples = _unit_images(samples, "samples")
    if samples.ndim != 4 or samples.shape[-1] != 3:
        raise ValueError(f"samples: Stacked MNIST images are [n, H, W, 3], got {samples.shape}")
    channels = [classifier_outputs(classifier, samples[..., c])[0].argmax(-1) for c in range(3)]
    return metrics.stacked_modes(np.stack(channels, axis=1), classifier.num_classes)


def conditional_metrics(reference: EvalReference, samples, labels) -> dict[str, Any]:
    """How well a class-conditional generator draws the classes it is asked for.

    Args:
      reference: from ``prepare_reference`` (its classifier and labelled test images).
      samples: images of the data's shape, float in [0, 1] or uint8, ``[n, ...]``.
      labels: int ``[n]``, the class each sample was drawn for.

    Returns:
      A JSON-ready dict: ``accuracy`` (the share of samples the classifier assigns to their
      requested class) and ``accuracy_per_class``; ``fid_per_class``, the Frechet distance in
      the classifier's features between the samples of class c and the test images of class c
      (``None`` where either side has fewer than 2 images), with ``num_per_class`` and
      ``num_test_per_class``; ``worst_class_accuracy`` and ``mean_fid_per_class``; and
      ``classifier_test_accuracy_per_class``, the classifier's own accuracy on each class of
      the test images (the ceiling of ``accuracy_per_class``).
    """
    samples = _unit_images(samples, "samples")
    labels = np.asarray(labels)
    if labels.shape != samples.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: one integer class per sample, [{len(samples)}], got "
                         f"{labels.dtype} {list(labels.shape)}")
    test_labels = reference.data.test_labels
    num_classes = int(reference.test_logits.shape[-1])
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be classes 0..{num_classes - 1} of the classifier")
    logits, features = classifier_outputs(reference.classifier, samples)
    correct = logits.argmax(-1) == labels
    test_correct = reference.test_logits.argmax(-1) == test_labels
    accuracy, fids, counts, test_counts, ceiling = [], [], [], [], []
    for c in range(num_classes):
        mine, theirs = labels == c, test_labels == c
        counts.append(int(mine.sum()))
        test_counts.append(int(theirs.sum()))
        accuracy.append(float(correct[mine].mean()) if mine.any() else None)
        ceiling.append(float(test_correct[theirs].mean()) if theirs.any() else None)
        fids.append(metrics.frechet_distance_from_activations(
            reference.test_features[theirs], features[mine]
        ) if mine.sum() > 1 and theirs.sum() > 1 else None)
    drawn = [a for a in accuracy if a is not None]
    measured = [f for f in fids if f is not None]
    return {
        "accuracy": float(correct.mean()),
        "accuracy_per_class": accuracy,
        "worst_class_accuracy": min(drawn),
        "fid_per_class": fids,
        "mean_fid_per_class": float(np.mean(measured)) if measured else None,
        "num_per_class": counts,
        "num_test_per_class": test_counts,
        "classifier_test_accuracy_per_class": ceiling,
    }
