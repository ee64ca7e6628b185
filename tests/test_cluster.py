"""jaxgan.cluster against hand-computed clusterings, renamings and draws."""

import numpy as np
import pytest

from jaxgan import cluster


def test_kmeans_finds_separated_blobs_and_their_means(key):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 40)
    points = centres[truth] + rng.normal(scale=0.5, size=(120, 2))
    centers, assign = cluster.kmeans(key, points, 3, restarts=2)
    # The same partition as the blobs, up to the names of the clusters.
    rename = {int(t): int(a) for t, a in zip(truth, assign)}
    assert len(set(rename.values())) == 3
    np.testing.assert_array_equal(assign, [rename[int(t)] for t in truth])
    for t in range(3):  # each center is its blob's mean
        np.testing.assert_allclose(centers[rename[t]], points[truth == t].mean(axis=0), atol=1e-5)


def test_lloyd_iterations_by_hand(key):
    # From centers 0 and 1: {0} and {1, 10, 11} -> centers 0 and 22/3; then {0, 1} and
    # {10, 11} -> 0.5 and 10.5, where it stays.
    points = np.array([[0.0], [1.0], [10.0], [11.0]])
    centers, assign = cluster.kmeans(key, points, 2, iterations=1, init=[[0.0], [1.0]])
    np.testing.assert_allclose(centers[:, 0], [0.0, 22.0 / 3.0], rtol=1e-6)
    np.testing.assert_array_equal(assign, [0, 0, 1, 1])  # assigned to the moved centers
    centers, assign = cluster.kmeans(key, points, 2, iterations=5, init=[[0.0], [1.0]])
    np.testing.assert_allclose(centers[:, 0], [0.5, 10.5], rtol=1e-6)
    np.testing.assert_array_equal(assign, [0, 0, 1, 1])


def test_an_empty_cluster_restarts_at_the_farthest_point(key):
    # Center 1000 gets no point; it restarts at 100, the point farthest from center 1, and
    # center 0 moves to the mean of all four (25.75); then {0, 1, 2} and {100}.
    points = np.array([[0.0], [1.0], [2.0], [100.0]])
    centers, _ = cluster.kmeans(key, points, 2, iterations=1, init=[[1.0], [1000.0]])
    np.testing.assert_allclose(centers[:, 0], [25.75, 100.0])
    centers, assign = cluster.kmeans(key, points, 2, iterations=3, init=[[1.0], [1000.0]])
    np.testing.assert_allclose(centers[:, 0], [1.0, 100.0])
    np.testing.assert_array_equal(assign, [0, 0, 0, 1])


def test_kmeans_is_a_function_of_its_key(key):
    points = np.random.default_rng(1).normal(size=(200, 3))
    first = cluster.kmeans(key, points, 5)
    again = cluster.kmeans(key, points, 5)
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(first[0], again[0])


def test_kmeans_rejects_bad_arguments(key):
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        cluster.kmeans(key, np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match=r"init must be centers \[2, 2\]"):
        cluster.kmeans(key, np.zeros((3, 2)), 2, init=np.zeros((2, 3)))


def test_match_clusters_maximizes_the_overlap():
    # A renaming of the same partition is undone.
    np.testing.assert_array_equal(
        cluster.match_clusters([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1], 3), [0, 0, 1, 1, 2, 2]
    )
    # Overlaps (new x previous): new 0 has 1 point of previous 0 and 2 of previous 1, new 1
    # has 2 of previous 0. Keeping the ids agrees on 1 point, swapping them on 4.
    np.testing.assert_array_equal(
        cluster.match_clusters([0, 0, 0, 1, 1], [1, 1, 0, 0, 0], 2), [0, 0, 1, 1, 1]
    )
    # 3 clusters where the greedy choice (new 0 -> previous 0, its largest overlap, 3 points)
    # loses to the assignment (new 0 -> 1, new 1 -> 0, new 2 -> 2: 2 + 2 + 1 = 5 > 3 + 0 + 1).
    previous = [0, 0, 0, 1, 1, 0, 0, 2]
    new = [0, 0, 0, 0, 0, 1, 1, 2]
    renamed = cluster.match_clusters(previous, new, 3)
    assert np.sum(renamed == np.asarray(previous)) == 5
    np.testing.assert_array_equal(renamed, [1, 1, 1, 1, 1, 0, 0, 2])


def test_counts_and_stratified_labels_by_hand():
    np.testing.assert_array_equal(cluster.cluster_counts([2, 0, 2, 2], 4), [1, 0, 3, 0])
    # Quantiles 1/8, 3/8, 5/8, 7/8 against cumulative shares 1/4, 1.
    np.testing.assert_array_equal(cluster.stratified_labels([1, 3], 4), [0, 1, 1, 1])
    # An empty cluster is never drawn.
    np.testing.assert_array_equal(cluster.stratified_labels([2, 0, 2], 4), [0, 0, 2, 2])
    labels = cluster.stratified_labels([5, 3, 2], 1000)
    np.testing.assert_array_equal(np.bincount(labels), [500, 300, 200])
    with pytest.raises(ValueError, match="non-negative"):
        cluster.stratified_labels([0, 0], 3)


def test_principal_components_of_rank_one_data(key):
    # Points t * u along u = (0.6, 0.8, 0): one component, the centred t (up to its sign).
    t = np.linspace(-2.0, 3.0, 50)
    points = t[:, None] * np.array([0.6, 0.8, 0.0])
    projected = cluster.principal_components(key, points, 1)
    assert projected.shape == (50, 1)
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(t - t.mean()), atol=1e-5)
    # As many dimensions as the data's: the centred data itself.
    np.testing.assert_allclose(cluster.principal_components(key, points, 3),
                               points - points.mean(axis=0), atol=1e-6)
