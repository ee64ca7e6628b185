"""Evaluation metrics against closed forms and brute force; the classifier's code path, tiny.

The real classifier is never trained here (that, and its test accuracy, is the job of
``python -m experiments.evaluate --classifier-only``); a tiny one exercises the same code.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from experiments import report
from experiments.evaluate import CLASSIFIER_PRESETS
from jaxgan import eval as jeval
from jaxgan.eval import classifier as classifier_lib
from jaxgan.eval import metrics, suite
from tests.support import ROOT

TINY_CLASSIFIER = classifier_lib.ClassifierConfig(**CLASSIFIER_PRESETS["tiny"])

SHARED_MNIST = os.path.normpath(os.path.join(ROOT, "..", "shared", "mnist"))

# ---------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_distance_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(0)
    mean1, mean2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mean1 - mean2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = metrics.frechet_distance(mean1, np.diag(var1), mean2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_full_covariance_against_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mean1, mean2 = rng.normal(size=5), rng.normal(size=5)
    trace_sqrt = np.trace(scipy.linalg.sqrtm(cov1 @ cov2)).real
    expected = np.sum((mean1 - mean2) ** 2) + np.trace(cov1 + cov2) - 2 * trace_sqrt
    assert metrics.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(expected, rel=1e-9)
    # Symmetric in its two arguments.
    assert metrics.frechet_distance(mean2, cov2, mean1, cov1) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_scaled_covariance_and_singular_covariance():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T
    # cov2 = c^2 cov1 => (cov1 cov2)^(1/2) = c cov1 => d^2 = (1 - c)^2 Tr(cov1).
    assert metrics.frechet_distance(np.zeros(4), cov, np.zeros(4), 9.0 * cov) == pytest.approx(
        4.0 * np.trace(cov), rel=1e-9
    )
    # A rank-1 covariance (singular): finite and the closed form, no NaN. The zero eigenvalues
    # come out as +-1e-16 and their square roots as ~1e-8: that is the accuracy to expect.
    u = rng.normal(size=(4, 1))
    rank1 = u @ u.T
    assert metrics.frechet_distance(np.ones(4), rank1, np.ones(4), rank1) == pytest.approx(
        0.0, abs=1e-6
    )
    assert metrics.frechet_distance(np.zeros(4), rank1, np.zeros(4), 4.0 * rank1) == pytest.approx(
        np.trace(rank1), rel=1e-6
    )


def test_frechet_distance_from_activations_hand_case_and_identical_sets():
    # 1-D: a = [0, 2] has mean 1 and unbiased variance 2; b = [1, 1, 4] has mean 2 and
    # unbiased variance 3: d^2 = 1 + 2 + 3 - 2 sqrt(6).
    a = np.array([[0.0], [2.0]])
    b = np.array([[1.0], [1.0], [4.0]])
    assert metrics.frechet_distance_from_activations(a, b) == pytest.approx(
        6.0 - 2.0 * math.sqrt(6.0), rel=1e-12
    )
    features = np.random.default_rng(3).normal(size=(50, 8))
    assert metrics.frechet_distance_from_activations(features, features) == pytest.approx(
        0.0, abs=1e-9
    )
    assert metrics.frechet_distance_from_activations(features, features + 1.0) == pytest.approx(
        8.0, rel=1e-9
    )


# ---------------------------------------------------------------------------------------------
# Classifier score and class coverage


def confident_logits(classes, num_classes=10):
    return 50.0 * np.eye(num_classes)[np.asarray(classes)]


def test_classifier_score_extremes():
    constant = confident_logits([3] * 40)
    assert metrics.classifier_score(constant) == pytest.approx((1.0, 0.0), abs=1e-9)
    uniform_spread = confident_logits(np.tile(np.arange(10), 4))
    assert metrics.classifier_score(uniform_spread)[0] == pytest.approx(10.0, rel=1e-9)
    # Uncertain predictions score 1 whatever their spread.
    assert metrics.classifier_score(np.zeros((7, 10)))[0] == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_hand_case_and_splits():
    # Two classes; p(y|x) = [1, 0] and [1/2, 1/2] => p(y) = [3/4, 1/4].
    logits = np.log(np.array([[1.0, 1e-300], [0.5, 0.5]]))
    kl = [math.log(1 / 0.75), 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)]
    assert metrics.classifier_score(logits)[0] == pytest.approx(math.exp(np.mean(kl)), rel=1e-9)
    # Splits: a constant part (score 1) and a spread part (score 10): mean 5.5, std 4.5.
    both = np.concatenate([confident_logits([0] * 10), confident_logits(np.arange(10))])
    mean, std = metrics.classifier_score(both, num_splits=2)
    assert (mean, std) == pytest.approx((5.5, 4.5), rel=1e-9)


def test_mean_confidence_hand_values():
    # softmax([0, 0]) tops at 1/2, softmax([log 3, 0]) at 3/4: mean 5/8.
    assert metrics.mean_confidence(np.array([[0.0, 0.0], [np.log(3.0), 0.0]])) == pytest.approx(0.625)
    assert metrics.mean_confidence(np.zeros((4, 10))) == pytest.approx(0.1)
    assert metrics.mean_confidence(np.array([[1000.0, 0.0, -5.0]])) == pytest.approx(1.0)


def test_eval_data_with_given_validation_and_real_digits():
    rng = np.random.default_rng(3)
    train = (rng.uniform(size=(12, 28, 28)) * 255).astype(np.uint8)
    test = rng.uniform(size=(5, 28, 28)).astype(np.float32)
    validation = rng.uniform(size=(4, 28, 28)).astype(np.float32)
    numbered = np.broadcast_to(np.arange(40, dtype=np.uint8)[:, None, None], (40, 28, 28))
    data = suite.make_eval_data(train, test, np.arange(5), validation_images=validation,
                                real_images=numbered, num_real=25)
    np.testing.assert_array_equal(data.validation, validation)
    assert len(data.train) == 12  # the generator's digits stay whole: memorization's reference
    values = np.rint(data.real[:, 0, 0] * 255).astype(int)
    assert len(values) == 25 and len(set(values)) == 25 and set(values) <= set(range(40))
    assert np.any(np.diff(values) < 0)  # a random subset in a random order


def test_class_histogram_and_rarest_share():
    histogram = metrics.class_histogram(np.array([0, 0, 1, 3, 3, 3]), num_classes=4)
    np.testing.assert_array_equal(histogram, [2, 1, 0, 3])
    assert metrics.rarest_class_share(histogram) == 0.0
    from_logits = metrics.class_histogram(confident_logits([1, 1, 2, 0, 1], 3), num_classes=3)
    np.testing.assert_array_equal(from_logits, [1, 3, 1])
    assert metrics.rarest_class_share(from_logits) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        metrics.class_histogram(np.array([0, 4]), num_classes=4)


# ---------------------------------------------------------------------------------------------
# Parzen window


def brute_force_parzen(x, centres, sigma):
    """log (1/N) sum_i prod_d N(x_d; mu_id, sigma), straight from the definition, float64."""
    x, centres = np.asarray(x, np.float64), np.asarray(centres, np.float64)
    diff = x[:, None, :] - centres[None, :, :]  # [n, N, d]
    density = np.prod(np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)), -1)
    with np.errstate(divide="ignore"):
        return np.log(density.mean(axis=1))


def test_parzen_log_likelihood_matches_brute_force():
    rng = np.random.default_rng(4)
    x, centres = rng.uniform(size=(5, 6)), rng.uniform(size=(7, 6))
    for sigma in (0.2, 0.5, 1.0):
        expected = brute_force_parzen(x, centres, sigma)
        got = metrics.parzen_log_likelihood(x, centres, sigma, batch_size=2)
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_parzen_log_likelihood_where_naive_exp_underflows():
    # 784-d like MNIST, sigma 0.01: every kernel value is below 1e-300, so the definition
    # computed naively gives log(0) = -inf; in log space the answer is finite.
    rng = np.random.default_rng(5)
    x, centres, sigma = rng.uniform(size=(3, 784)), rng.uniform(size=(4, 784)), 0.01
    assert np.all(np.isneginf(brute_force_parzen(x, centres, sigma)))
    # The same definition in log space, with the differences taken directly (no expansion).
    d2 = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    expected = (
        scipy.special.logsumexp(-d2 / (2 * sigma**2), axis=1)
        - math.log(4)
        - 784 * math.log(sigma * math.sqrt(2 * math.pi))
    )
    got = metrics.parzen_log_likelihood(x, centres, sigma)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # One centre much nearer than the rest: log p = -d_min^2 / (2 sigma^2) - log N - Z.
    near = np.concatenate([x[:1] + 0.001, centres])
    d_min2 = 784 * 0.001**2
    log_z = 784 * math.log(sigma * math.sqrt(2 * math.pi))
    closed_form = -d_min2 / (2 * sigma**2) - math.log(5) - log_z
    got = metrics.parzen_log_likelihood(x[:1], near, sigma)[0]
    assert got == pytest.approx(closed_form, rel=1e-9)


@pytest.mark.parametrize("noise", [0.1, 0.4])
def test_select_parzen_sigma_finds_the_generating_width(noise):
    # Each validation point has its own kernel centre at Gaussian distance ``noise`` per
    # dimension and the points lie far apart, so the likelihood is maximised at sigma = noise.
    rng = np.random.default_rng(6)
    validation = 50.0 * rng.normal(size=(40, 100))
    centres = validation + noise * rng.normal(size=validation.shape)
    grid = (0.05, 0.1, 0.2, 0.4, 0.8)
    best, means = metrics.select_parzen_sigma(validation, centres, grid, batch_size=16)
    assert best == noise
    assert means.shape == (5,) and int(np.argmax(means)) == grid.index(noise)
    # The same float64 sums in another order (batches of 16 rows against all 40 at once): the
    # rounding differs by about 1e-12 relative on the AVX-512 kind, so 1e-10; a wrong sigma or
    # a lost batch would be off by whole nats.
    np.testing.assert_allclose(
        means[2], metrics.parzen_log_likelihood(validation, centres, 0.2).mean(), rtol=1e-10
    )


def test_parzen_window_evaluation_reports_mean_and_standard_error():
    rng = np.random.default_rng(7)
    test, centres, validation = (rng.uniform(size=(n, 10)) for n in (30, 20, 15))
    grid = (0.1, 0.3, 1.0)
    result = metrics.parzen_window_evaluation(test, centres, validation, grid)
    best, _ = metrics.select_parzen_sigma(validation, centres, grid)
    log_p = brute_force_parzen(test, centres, best)
    assert result.sigma == best
    assert result.mean == pytest.approx(log_p.mean(), rel=1e-10)
    assert result.stderr == pytest.approx(log_p.std() / math.sqrt(30), rel=1e-9)
    assert (result.num_centres, result.num_test) == (20, 30)


# ---------------------------------------------------------------------------------------------
# Memorization


def test_nearest_neighbor_distances_and_memorization_on_hand_data():
    train = np.array([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(
        metrics.nearest_neighbor_distances(np.array([[3.0, 4.0], [10.0, 0.5]]), train), [5.0, 0.5]
    )
    generated = np.array([[0.1, 0.0], [9.8, 0.0]])  # distances 0.1, 0.2
    heldout = np.array([[1.0, 0.0], [12.0, 0.0], [5.0, 0.0]])  # distances 1, 2, 5
    result = metrics.memorization_check(generated, train, heldout, batch_size=1)
    assert result.generated_median == pytest.approx(0.15)
    assert result.heldout_median == pytest.approx(2.0)
    assert result.ratio == pytest.approx(0.075)
    assert result.generated_near_copy_share == 1.0  # both below the 1st percentile, 1.02
    same = metrics.memorization_check(heldout, train, heldout)
    assert (same.ratio, same.generated_near_copy_share) == (1.0, pytest.approx(1 / 3))


def test_parzen_geometry_on_hand_data():
    """Nearest-centre distances of test points and nearest-other-centre distances, by hand."""
    centres = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [10.0, 0.0]])
    # Each centre's nearest other one: 5 (0 -> 1), 0 and 0 (the duplicate pair), 7.07 (3 -> 1).
    np.testing.assert_allclose(metrics.nearest_other_distances(centres, batch_size=3),
                               [5.0, 0.0, 0.0, math.hypot(7.0, 4.0)])
    test = np.array([[0.0, 1.0], [6.0, 8.0], [10.0, 2.0]])  # nearest: 1, 5, 2
    geometry = metrics.parzen_geometry(test, centres, batch_size=2)
    assert geometry.test_nearest_median == pytest.approx(2.0)
    assert geometry.test_nearest_mean_sq == pytest.approx((1 + 25 + 4) / 3)
    assert geometry.centre_nearest_median == pytest.approx(2.5)  # median of 0, 0, 5, 7.07
    with pytest.raises(ValueError, match="at least 2 points"):
        metrics.nearest_other_distances(centres[:1])


# ---------------------------------------------------------------------------------------------
# Classifier (tiny) and the suite


@pytest.fixture(scope="module")
def noise_digits():
    rng = np.random.default_rng(8)
    images = rng.uniform(size=(24, 28, 28)).astype(np.float32)
    return images, np.arange(24) % 10


@pytest.fixture(scope="module")
def tiny_classifier(noise_digits):
    return classifier_lib.train_classifier(*noise_digits, TINY_CLASSIFIER)


def test_train_classifier_is_deterministic_from_its_seed(noise_digits, tiny_classifier):
    config = TINY_CLASSIFIER
    again = classifier_lib.train_classifier(*noise_digits, config)
    other = classifier_lib.train_classifier(*noise_digits, dataclasses.replace(config, seed=1))
    leaves = jax.tree.leaves(tiny_classifier.params)
    assert all(np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(again.params)))
    assert not all(np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(other.params)))


def test_classifier_outputs_shapes_and_batching(noise_digits, tiny_classifier):
    images = noise_digits[0][:7]
    logits, features = classifier_lib.classifier_outputs(tiny_classifier, images, batch_size=3)
    assert logits.shape == (7, 10) and features.shape == (7, 8)
    whole_logits, whole_features = classifier_lib.classifier_outputs(
        tiny_classifier, images[..., None], batch_size=16
    )
    np.testing.assert_allclose(logits, whole_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features, whole_features, rtol=1e-5, atol=1e-6)
    assert np.all(features >= 0)  # post-ReLU features
    accuracy = classifier_lib.classifier_accuracy(tiny_classifier, images, logits.argmax(-1))
    assert accuracy == 1.0


def test_random_affine_identity_and_range(key):
    images = np.random.default_rng(9).uniform(size=(4, 28, 28)).astype(np.float32)
    identity = classifier_lib.random_affine(
        key, images, max_shift=0.0, max_rotation=0.0, max_scale=0.0, max_shear=0.0
    )
    np.testing.assert_allclose(np.asarray(identity), images, atol=1e-5)
    moved = np.asarray(classifier_lib.random_affine(
        key, images, max_shift=2.0, max_rotation=10.0, max_scale=0.1, max_shear=0.1
    ))
    assert moved.shape == images.shape and moved.min() >= 0.0 and moved.max() <= 1.0
    assert not np.allclose(moved, images, atol=1e-2)
    # Independent draws per image: the same image gets different warps.
    same = np.repeat(images[:1], 2, axis=0)
    warped = np.asarray(classifier_lib.random_affine(
        key, same, max_shift=2.0, max_rotation=10.0, max_scale=0.1, max_shear=0.1
    ))
    assert not np.allclose(warped[0], warped[1], atol=1e-3)


def test_load_or_train_classifier_caches(noise_digits, tmp_path):
    config = dataclasses.replace(TINY_CLASSIFIER, steps=2)
    first = classifier_lib.load_or_train_classifier(*noise_digits, config, cache_dir=tmp_path)
    second = classifier_lib.load_or_train_classifier(*noise_digits, config, cache_dir=tmp_path)
    assert not first.from_cache and second.from_cache
    assert first.cache_path == second.cache_path
    assert second.train_seconds == pytest.approx(first.train_seconds)
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = classifier_lib.load_or_train_classifier(
        *noise_digits, dataclasses.replace(config, seed=3), cache_dir=tmp_path
    )
    assert not other.from_cache and other.cache_path != first.cache_path


def test_suite_rows_on_tiny_data(noise_digits, tiny_classifier):
    rng = np.random.default_rng(10)
    train = (rng.uniform(size=(30, 28, 28)) * 255).astype(np.uint8)
    test = rng.uniform(size=(20, 28, 28)).astype(np.float32)
    reference = jeval.prepare_reference(tiny_classifier, train, test, np.arange(20) % 10,
                                        num_validation=10)
    data = reference.data
    assert len(data.validation) == 10 and len(data.real) == 20
    # Validation and the real reference partition the training digits.
    together = np.concatenate([data.validation, data.real]).reshape(30, -1)
    assert len(np.unique(together, axis=0)) == 30
    # The real reference keeps a shuffled order (data sorted by class would break the
    # classifier score's splits): constant images numbered 0..29 do not come out sorted.
    numbered = np.broadcast_to(np.arange(30, dtype=np.uint8)[:, None, None], (30, 28, 28))
    real_order = suite.make_eval_data(numbered, test, np.arange(20) % 10, num_validation=10).real
    assert np.any(np.diff(real_order[:, 0, 0]) < 0)
    grid = (0.1, 1.0)
    # Samples that are the test digits themselves: zero Frechet distances, ratio 1.
    row = jeval.evaluate_samples(test, reference, sigmas=grid, num_score_splits=2)
    assert row["fid_features"] == pytest.approx(0.0, abs=1e-6)
    assert row["fid_logits"] == pytest.approx(0.0, abs=1e-6)
    assert row["memorization"]["ratio"] == pytest.approx(1.0)
    assert sum(row["class_histogram"]) == 20
    parzen = metrics.parzen_window_evaluation(data.test, test, data.validation, grid)
    assert row["parzen"]["mean"] == pytest.approx(parzen.mean)
    # The samples are the test digits: each test digit is a centre (distance 0).
    assert row["parzen"]["test_nearest_median"] == 0.0
    assert row["parzen"]["centre_nearest_median"] == pytest.approx(
        np.median(metrics.nearest_other_distances(test)))
    rows = suite.reference_rows(reference, num_noise=15, sigmas=grid, num_score_splits=2)
    # The real row's samples are training digits: nearest-training distance exactly 0.
    assert rows["real"]["memorization"]["generated_median"] == 0.0
    assert rows["noise"]["num_samples"] == 15
    assert rows["noise"]["fid_features"] > 0.0
    table = report.format_table({"generator": row, **rows})
    assert [line.split()[0] for line in table.splitlines()[2:5]] == ["generator", "real", "noise"]


def test_parzen_probe_images_by_hand():
    from jaxgan.eval.suite import _probe_images

    rng = np.random.default_rng(0)
    delta = np.zeros((1, 9, 9), np.float32)
    delta[0, 4, 4] = 1.0
    # A 0.5-pixel Gaussian blur of a single lit pixel: the separable kernel scipy uses,
    # exp(-k^2 / (2 * 0.25)) normalized over |k| <= 2 (truncate 4 sigma), outer product.
    taps = np.exp(-np.arange(-2, 3) ** 2 / 0.5)
    taps /= taps.sum()
    blurred = _probe_images("blurred 0.5 px", delta, rng)
    np.testing.assert_allclose(blurred[0, 2:7, 2:7], np.outer(taps, taps), rtol=1e-5)
    assert blurred[0].sum() == pytest.approx(1.0, abs=1e-6) and blurred[0, 0].max() == 0.0
    # A trailing channel axis is not blurred across.
    assert _probe_images("blurred 0.5 px", delta[..., None], rng).shape == (1, 9, 9, 1)
    gray = np.array([[[0.2, 0.5, 0.51, 0.9]]], np.float32)
    np.testing.assert_array_equal(_probe_images("binarized at 0.5", gray, rng), [[[0, 0, 1, 1]]])
    # Shifts move the lit pixel by exactly one pixel, in one of four directions.
    shifted = _probe_images("shifted 1 px", np.repeat(delta, 40, axis=0), rng)
    where = {tuple(np.argwhere(image)[0]) for image in shifted}
    assert where == {(3, 4), (5, 4), (4, 3), (4, 5)}
    assert len(_probe_images("half as many", np.zeros((7, 2, 2)), rng)) == 3
    with pytest.raises(ValueError, match="unknown Parzen probe"):
        _probe_images("sharpened", delta, rng)


def test_parzen_probes_rows_are_the_protocol_on_changed_centres(tiny_classifier):
    rng = np.random.default_rng(11)
    train = (rng.uniform(size=(30, 28, 28)) ** 4 * 255).astype(np.uint8)
    test = rng.uniform(size=(12, 28, 28)).astype(np.float32) ** 4
    reference = jeval.prepare_reference(tiny_classifier, train, test, np.arange(12) % 10,
                                        num_validation=10)
    data = reference.data
    grid = (0.1, 0.3, 1.0)
    samples = rng.uniform(size=(16, 28, 28)).astype(np.float32)
    probes = suite.parzen_probes(reference, samples, sigmas=grid)
    assert list(probes) == ["real", "generator"]
    for what, centres in (("real", data.real), ("generator", samples)):
        rows = probes[what]
        assert list(rows) == [name for name, _ in suite.PARZEN_PROBES]
        same = metrics.parzen_window_evaluation(data.test, centres, data.validation, grid)
        assert rows["as they are"]["mean"] == pytest.approx(same.mean, rel=1e-12)
        assert rows["as they are"]["sigma"] == same.sigma
        half = metrics.parzen_window_evaluation(data.test, centres[: len(centres) // 2],
                                                data.validation, grid)
        assert rows["half as many"]["mean"] == pytest.approx(half.mean, rel=1e-12)
        assert rows["half as many"]["num_centres"] == len(centres) // 2
        binary = metrics.parzen_window_evaluation(
            data.test, (centres > 0.5).astype(np.float32), data.validation, grid)
        assert rows["binarized at 0.5"]["mean"] == pytest.approx(binary.mean, rel=1e-12)
    assert "generator" not in suite.parzen_probes(reference, sigmas=grid)
    table = report.format_parzen_probes(probes)
    assert table.splitlines()[0].split()[-2:] == ["real", "generator"]
    assert len(table.splitlines()) == 2 + len(suite.PARZEN_PROBES)


def test_evaluate_refuses_parzen_probes_for_stacked_mnist(tmp_path):
    np.save(tmp_path / "stacked.npy", np.zeros((10, 28, 28, 3), np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", "--samples", str(tmp_path / "stacked.npy"),
         "--stacked", "--parzen-probes"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--parzen-probes" in result.stderr


@pytest.mark.skipif(
    not os.path.exists(os.path.join(SHARED_MNIST, "t10k-labels-idx1-ubyte.gz")),
    reason="needs the MNIST test split IDX files at ../shared/mnist",
)
def test_evaluate_command_on_a_samples_file(tmp_path):
    # The real entry point with the tiny classifier preset; the data are the real test split
    # and the embedded training digits. Samples: 100 embedded training digits, so the
    # memorization distances are exactly 0. (The reference rows' path is test_suite_rows.)
    from jaxgan.data import load_data

    train = load_data("embedded", "train")
    samples = train.images[::50][:100].astype(np.float32) / 255.0  # classes 0..9, 10 each
    np.save(tmp_path / "digits.npy", samples)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", "--samples", str(tmp_path / "digits.npy"),
         "--classifier-preset", "tiny", "--cache-dir", str(tmp_path / "cache"),
         "--test-data", f"idx:{SHARED_MNIST}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "digits.eval.json").read_text())
    assert list(report["rows"]) == ["generator"]
    assert report["data"]["num_test"] == 10_000 and report["data"]["num_train"] == 5_000
    generator = report["rows"]["generator"]
    assert generator["num_samples"] == 100 and sum(generator["class_histogram"]) == 100
    assert generator["memorization"]["generated_median"] == 0.0
    assert generator["parzen"]["num_centres"] == 100
    assert generator["parzen"]["sigma"] in generator["parzen"]["sigmas"]
    assert report["classifier"]["config"]["steps"] == 3  # the tiny preset
    assert "generator" in result.stdout


@pytest.mark.skipif(
    not os.path.exists(os.path.join(SHARED_MNIST, "train-labels-idx1-ubyte.gz")),
    reason="needs the full MNIST train split IDX files at ../shared/mnist",
)
def test_evaluate_command_with_a_full_reference_split_follows_the_papers_rows(tmp_path):
    from jaxgan.data import load_data

    samples = load_data("embedded", "train").images[::50][:100].astype(np.float32) / 255.0
    np.save(tmp_path / "digits.npy", samples)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", "--samples", str(tmp_path / "digits.npy"),
         "--reference", "--parzen-probes", "--num-samples", "200", "--classifier-preset", "tiny",
         "--cache-dir", str(tmp_path / "cache"), "--test-data", f"idx:{SHARED_MNIST}",
         "--reference-data", f"idx:{SHARED_MNIST}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "digits.eval.json").read_text())
    assert report["data"]["reference"].endswith("rows 0:50000")
    assert report["data"]["parzen_validation"].endswith("rows 50000:51000")
    assert report["data"]["num_parzen_validation"] == 1000
    assert report["classifier"]["trained_on"].endswith("rows 0:50000")
    assert report["rows"]["real"]["num_samples"] == 200  # as many real digits as --num-samples
    assert report["rows"]["noise"]["num_samples"] == 200
    assert "mean_confidence" in report["rows"]["generator"]
    probes = report["parzen_probes"]
    assert probes["real"]["as they are"]["mean"] == pytest.approx(
        report["rows"]["real"]["parzen"]["mean"])
    assert probes["generator"]["half as many"]["num_centres"] == 50
    assert "blurred 0.5 px" in result.stdout


def test_evaluate_without_a_test_split_names_the_flag(tmp_path, monkeypatch):
    np.save(tmp_path / "digits.npy", np.zeros((10, 28, 28), np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", "--samples", str(tmp_path / "digits.npy"),
         "--test-data", f"idx:{tmp_path / 'missing'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing" in result.stderr


# ---------------------------------------------------------------------------------------------
# Precision, recall and coverage in a feature space, by hand


def test_knn_radii_exclude_the_point_itself():
    points = np.array([[0.0], [1.0], [2.0], [10.0]])
    np.testing.assert_allclose(metrics.knn_radii(points, 1), [1, 1, 1, 8])
    np.testing.assert_allclose(metrics.knn_radii(points, 2), [2, 1, 2, 9])
    with pytest.raises(ValueError, match="k must be in"):
        metrics.knn_radii(points, 4)


def test_precision_recall_and_coverage_by_hand():
    # real balls (k = 1): 0 r1, 1 r1, 2 r1, 10 r8; generated balls: 0.5 r4.5, 5 r4.5, 30 r25
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    generated = np.array([[0.5], [5.0], [30.0]])
    result = metrics.precision_recall(real, generated, k=1, batch_size=2)
    # 0.5 is in 0's ball, 5 in 10's (|5 - 10| = 5 <= 8), 30 in none
    assert result["precision"] == pytest.approx(2 / 3)
    # 0, 1, 2 lie in 0.5's ball; 10 is outside 5's (5 > 4.5) but inside 30's (20 <= 25)
    assert result["recall"] == 1.0
    assert (result["n_real"], result["n_generated"], result["k"]) == (4, 3, 1)
    # real balls holding a generated point: 0's and 1's (0.5), 10's (5); not 2's
    assert metrics.coverage(real, generated, k=1, batch_size=3) == pytest.approx(3 / 4)


def test_a_collapsed_generator_is_precise_but_recalls_and_covers_little():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 4))
    collapsed = real[:1] + 0.01 * rng.normal(size=(400, 4))  # one real point, repeated
    same = metrics.precision_recall(real, rng.normal(size=(400, 4)), k=3)
    bad = metrics.precision_recall(real, collapsed, k=3)
    assert bad["precision"] == 1.0 and bad["recall"] < 0.05
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert metrics.coverage(real, collapsed, k=3) < 0.02
    assert metrics.coverage(real, rng.normal(size=(400, 4)), k=3) > 0.8


def test_feature_metrics_through_any_feature_function():
    rng = np.random.default_rng(3)
    real = rng.uniform(size=(60, 4, 4, 3)).astype(np.float32)
    generated = (0.5 * rng.uniform(size=(50, 4, 4, 3))).astype(np.float32)
    flatten = lambda images: images.reshape(len(images), -1)  # noqa: E731
    result = jeval.feature_metrics(flatten, real, generated, k=2)
    flat_real, flat_generated = flatten(real), flatten(generated)
    assert result["frechet_distance"] == pytest.approx(
        metrics.frechet_distance_from_activations(flat_real, flat_generated))
    manifold = metrics.precision_recall(flat_real, flat_generated, k=2)
    assert (result["precision"], result["recall"]) == (manifold["precision"], manifold["recall"])
    assert result["coverage"] == metrics.coverage(flat_real, flat_generated, k=2)
    assert (result["n_real"], result["n_generated"], result["k"]) == (60, 50, 2)
    with pytest.raises(ValueError, match="differ in shape"):
        jeval.feature_metrics(flatten, real, generated[:, :2])


def test_classifier_for_3_channel_data_with_its_own_classes():
    """A user's labelled color data: the network takes its shape and its number of classes,
    and serves as a feature function."""
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(16, 8, 8, 3)).astype(np.float32)
    labels = np.arange(16) % 4
    trained = classifier_lib.train_classifier(images, labels, TINY_CLASSIFIER)
    assert trained.image_shape == (8, 8, 3) and trained.num_classes == 4
    logits, features = classifier_lib.classifier_outputs(trained, images[:5])
    assert logits.shape == (5, 4) and features.shape == (5, TINY_CLASSIFIER.feature_dim)
    np.testing.assert_array_equal(suite.classifier_features(trained)(images[:5]), features)
    with pytest.raises(ValueError, match="the classifier's shape"):
        classifier_lib.classifier_outputs(trained, images[:, :4])
    # the 3-channel augmentation moves every channel of an image by the same map
    moved = np.asarray(classifier_lib.random_affine(
        jax.random.key(0), np.repeat(images[:2, ..., :1], 3, axis=-1), max_shift=2.0,
        max_rotation=10.0, max_scale=0.1, max_shear=0.1))
    np.testing.assert_array_equal(moved[..., 0], moved[..., 2])


def test_stacked_modes_by_hand():
    every = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    assert metrics.stacked_modes(every) == {"modes": 1000, "kl_to_uniform": 0.0,
                                            "num_modes": 1000, "num_samples": 1000}
    one = metrics.stacked_modes(np.array([[1, 2, 3]] * 5))
    assert one["modes"] == 1 and one["kl_to_uniform"] == pytest.approx(math.log(1000))
    # two modes, 3:1: KL = 3/4 log(3/4 * 1000) + 1/4 log(1/4 * 1000)
    two = metrics.stacked_modes(np.array([[0, 0, 0]] * 3 + [[9, 9, 9]]))
    assert two["modes"] == 2
    assert two["kl_to_uniform"] == pytest.approx(0.75 * math.log(750) + 0.25 * math.log(250))
    with pytest.raises(ValueError, match="class indices"):
        metrics.stacked_modes(np.array([[0, 10, 0]]))


def test_stacked_mnist_modes_classify_each_channel(tiny_classifier):
    """Each channel goes through the digit classifier alone: a sample's mode is the
    classes of its three channels."""
    rng = np.random.default_rng(5)
    digits = rng.uniform(size=(6, 28, 28)).astype(np.float32)
    samples = np.stack([digits, digits[::-1], np.roll(digits, 1, axis=0)], axis=-1)
    classes = classifier_lib.classifier_outputs(tiny_classifier, digits)[0].argmax(-1)
    expected = metrics.stacked_modes(np.stack([classes, classes[::-1], np.roll(classes, 1)], 1))
    assert suite.stacked_mnist_modes(tiny_classifier, samples) == expected
    with pytest.raises(ValueError, match="Stacked MNIST images"):
        suite.stacked_mnist_modes(tiny_classifier, digits)
