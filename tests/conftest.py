"""Shared test setup: strict JAX numerics and small fixtures."""

import jax
import pytest

# Equinox-style strictness: implicit rank promotion is an error in the library's code paths.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh typed PRNG key."""
    return jax.random.key(0)
