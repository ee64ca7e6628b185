"""Shared test setup: strict JAX numerics, one compilation cache for the session, fixtures."""

import atexit
import os
import shutil
import tempfile

# One persistent XLA compilation cache for the whole session, this process, pytest-xdist's
# workers and every command a test starts (they inherit the environment): the suite compiles
# the same tiny steps many times over. Set before jax is imported; a fresh directory each
# session, removed at its end, so no run reads another's executables.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxgan-tests-xla-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402 - after the cache settings above
import pytest  # noqa: E402

# Equinox-style strictness: implicit rank promotion is an error in the library's code paths.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh typed PRNG key."""
    return jax.random.key(0)
