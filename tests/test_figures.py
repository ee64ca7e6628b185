"""The paper's Figures 2 and 3 as arrays: nearest training examples and walks through z."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import figures


def test_last_column_is_the_nearest_training_image_of_the_sample_beside_it():
    rng = np.random.default_rng(0)
    training = rng.uniform(size=(50, 6, 5)).astype(np.float32)
    samples = rng.uniform(size=(3, 4, 6, 5)).astype(np.float32)
    # row r's last sample is training image 7 * r + 2 plus a little noise
    for r in range(3):
        samples[r, -1] = training[7 * r + 2] + 0.01 * rng.standard_normal((6, 5))
    rows = figures.nearest_neighbor_rows(samples, training)
    assert rows.shape == (3, 5, 6, 5)
    np.testing.assert_array_equal(rows[:, :4], samples)
    for r in range(3):
        np.testing.assert_array_equal(rows[r, 4], training[7 * r + 2])
    # brute force over every training image agrees on unplanted rows too
    other = rng.uniform(size=(2, 1, 6, 5)).astype(np.float32)
    got = figures.nearest_neighbor_rows(other, training)[:, 1]
    for r in range(2):
        brute = np.argmin(((training - other[r, 0]) ** 2).sum(axis=(1, 2)))
        np.testing.assert_array_equal(got[r], training[brute])


def test_nearest_neighbor_rows_refuses_mismatched_images():
    with pytest.raises(ValueError, match="one image shape"):
        figures.nearest_neighbor_rows(np.zeros((1, 2, 6, 5)), np.zeros((3, 5, 6)))


def test_linear_interpolation_walks_from_start_to_end():
    start = jnp.array([[0.0, 2.0], [1.0, -1.0]])
    end = jnp.array([[4.0, 2.0], [-1.0, 1.0]])
    walks = np.asarray(figures.linear_interpolation(start, end, 5))
    assert walks.shape == (2, 5, 2)
    np.testing.assert_allclose(walks[0, :, 0], [0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(walks[0, :, 1], 2.0)
    np.testing.assert_allclose(walks[1, 2], [0.0, 0.0])
    np.testing.assert_allclose(walks[:, 0], start)
    np.testing.assert_allclose(walks[:, -1], end)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        figures.linear_interpolation(start, end, 1)
