"""Checkpoints of a ``GANState`` plus JSON metadata (data position, config), with Orbax.

Saving is atomic: Orbax writes each step into a temporary directory and renames it into place
only when it is complete, so a run killed mid-save leaves the previous checkpoints intact and
no half-written step is ever listed. Each checkpoint's metadata holds a digest of its arrays,
checked on restore, so flipped bytes (which Orbax itself reads without complaint) count as a
fault of that checkpoint. Restoring walks back from the newest step, trying each
twice: a transient read error moves nothing, and a checkpoint is set aside (moved to
``<step>.corrupt-<time>``, kept, not deleted) only by training, and only when it fails twice
while an older one restores cleanly (``Checkpointer.restore_latest``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxgan.errors import CheckpointError, StorageFullError
from jaxgan.files import describe_bytes, free_bytes
from jaxgan.state import GANState

# Free space a checkpoint leaves beside its own bytes (Orbax's metadata files).
_SPACE_MARGIN = 1 << 20

log = logging.getLogger(__name__)


def _to_saveable(state: GANState) -> GANState:
    # Orbax stores plain arrays; a typed PRNG key is stored as its raw uint32 data.
    return state.replace(key=jax.random.key_data(state.key))


class Checkpointer:
    """Saves and restores training checkpoints in ``directory``.

    Args:
      directory: where the numbered step directories live (created if missing).
      max_to_keep: how many of the newest checkpoints to keep.
      attempts: how many times a checkpoint is tried before the previous one is.
      retry_delay: seconds between those attempts.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int = 3,
        attempts: int = 2,
        retry_delay: float = 1.0,
    ):
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.directory = os.path.abspath(os.fspath(directory))
        self._attempts, self._retry_delay = attempts, retry_delay
        self._manager = ocp.CheckpointManager(
            self.directory,
            # Synchronous saves: a failed write (a full disk) raises here, in the caller,
            # instead of in a background thread after training went on.
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    def all_steps(self) -> list[int]:
        """The steps that have a complete checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: GANState, meta: dict[str, Any]) -> None:
        """Saves ``state`` and the JSON-serializable ``meta`` as checkpoint ``step``; returns
        when it is on disk.

        Raises:
          StorageFullError: the file system has less free space than the checkpoint's
            arrays and metadata need (checked before anything is written), or ran out of it
            while writing (the partial step is never listed; ``jaxgan.trainer`` removes it).
        """
        saveable = _to_saveable(state)
        meta = {**meta, _DIGEST: state_digest(saveable)}
        needed = sum(np.dtype(leaf.dtype).itemsize * int(np.prod(leaf.shape))
                     for leaf in jax.tree.leaves(saveable)) + len(json.dumps(meta))
        free = free_bytes(self.directory)
        if free is not None and free < needed + _SPACE_MARGIN:
            raise StorageFullError(
                f"no space for checkpoint {step} in {self.directory}: it needs about "
                f"{describe_bytes(needed)}, {describe_bytes(free)} free", self.directory,
            )
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(saveable), meta=ocp.args.JsonSave(meta)
            ),
        )

    def restore_latest(
        self, template: GANState, *, set_aside: bool = False
    ) -> tuple[int, GANState, dict[str, Any]] | None:
        """Restores the newest checkpoint that restores cleanly, or ``None`` if there is none.

        A checkpoint that fails to restore is tried once more (a transient read error of a
        network file system passes); if it fails again the previous one is tried. A failed
        checkpoint is its own fault only when an older one then restores cleanly with the same
        code: with ``set_aside`` (training, which would otherwise save over it) it is then
        moved to ``<step>.corrupt-<time>``, kept, never deleted; without (sampling,
        evaluation) nothing is moved. When no checkpoint restores, nothing is moved either.
        On several processes each one tries every step and they agree on the outcome, so all
        restore the same step and only process 0 moves files.

        Args:
          template: a state of the current model (e.g. from ``GAN.init``); it gives the tree
            structure, shapes, dtypes and shardings to restore into.
          set_aside: move checkpoints that are shown to be corrupt out of the way.

        Raises:
          CheckpointError: the checkpoints exist but their shapes do not fit ``template``
            (the model changed), or none of them could be restored (naming the newest's
            error).
        """
        self._manager.wait_until_finished()
        steps = self.all_steps()
        if not steps:
            return None
        failed: list[tuple[int, BaseException]] = []
        for step in reversed(steps):
            restored, error = None, None
            for attempt in range(1, self._attempts + 1):
                try:
                    restored, error = self.restore(step, template), None
                except CheckpointError:
                    raise
                except Exception as caught:  # noqa: BLE001 - judged below: retry, then older
                    restored, error = None, caught
                # Every process must take the same decision about the same step.
                if _all_processes(error is None):
                    break
                restored = None
                error = error or RuntimeError("restoring failed on another process")
                log.warning(
                    "restoring checkpoint %d failed (attempt %d of %d): %s",
                    step, attempt, self._attempts, _first_line(error),
                )
                if attempt < self._attempts:
                    time.sleep(self._retry_delay)
            if restored is None:
                failed.append((step, error))
                continue
            for bad_step, bad_error in failed:
                if set_aside:
                    moved = self._set_aside(bad_step)
                    log.warning(
                        "checkpoint %d fails to restore (%s) while the older checkpoint %d "
                        "restores: moved it to %s", bad_step, _first_line(bad_error), step, moved,
                    )
                else:
                    log.warning(
                        "checkpoint %d fails to restore (%s); using the older checkpoint %d "
                        "(nothing moved)", bad_step, _first_line(bad_error), step,
                    )
            return step, *restored
        newest, error = failed[0]
        raise CheckpointError(
            f"none of the {len(failed)} checkpoints in {self.directory} could be restored "
            f"(nothing was moved); the newest, step {newest}, fails with: {_first_line(error)}"
        )

    def restore(self, step: int, template: GANState) -> tuple[GANState, dict[str, Any]]:
        """Checkpoint ``step`` restored into ``template``'s structure, and its metadata;
        raises on any fault (``restore_latest`` judges them: retry, then older).

        Raises:
          CheckpointError: the checkpoint does not fit ``template``'s model.
          ValueError: its arrays do not match the digest saved with them, or their metadata
            is unreadable.
          OSError: a read error.
        """
        saveable = _to_saveable(template)
        expected = _shapes_by_name(saveable)
        stored = self._manager.item_metadata(step)["state"]
        stored = _shapes_by_name(getattr(stored, "item_metadata", stored))
        if not stored or None in stored.values():
            raise ValueError("array metadata is missing or unreadable")
        if stored != expected:
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} does not fit the current model "
                f"({_describe_difference(stored, expected)}); use a new workdir or the "
                "model settings it was trained with"
            )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(
                    jax.tree.map(ocp.utils.to_shape_dtype_struct, saveable)
                ),
                meta=ocp.args.JsonRestore(),
            ),
        )
        meta = dict(restored.meta)
        if _DIGEST in meta and state_digest(restored.state) != meta[_DIGEST]:
            # Orbax reads flipped bytes in array data without complaint: the digest written
            # with the checkpoint catches them.
            raise ValueError("the arrays read back do not match the digest saved with them")
        key_impl = jax.random.key_impl(template.key)
        state = restored.state.replace(
            key=jax.random.wrap_key_data(restored.state.key, impl=key_impl)
        )
        return state, meta

    def _set_aside(self, step: int) -> str:
        source = os.path.join(self.directory, str(step))
        target = f"{source}.corrupt-{int(time.time())}"
        if jax.process_index() == 0:  # one process renames; all wait for it
            os.rename(source, target)
        if jax.process_count() > 1:
            ocp.multihost.sync_global_processes(f"jaxgan_set_aside_{step}")
        self._manager.reload()
        return target

    def close(self) -> None:
        """Finishes pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


_DIGEST = "state_blake2b"


def state_digest(tree) -> str:
    """A BLAKE2b digest of a tree's arrays: their names, dtypes, shapes and bytes.

    Reads this process's first copy of each array (the whole array for the replicated
    states of ``jaxgan.sharding``).
    """
    digest = hashlib.blake2b(digest_size=16)
    for path, leaf in jax.tree.leaves_with_path(tree):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)
        value = np.ascontiguousarray(jax.device_get(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _all_processes(ok: bool) -> bool:
    """``ok`` on every process (a collective on several processes; ``ok`` itself on one)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok, np.int32))))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _shapes_by_name(tree) -> dict[str, tuple[int, ...]]:
    """``{"g_params.Dense_0.kernel": shape, ...}``: Orbax's array names for a state tree."""
    def name(path):
        return ".".join(
            str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))) for k in path
        )
    def shape(leaf):
        shape = getattr(leaf, "shape", None)
        return None if shape is None else tuple(shape)

    return {name(path): shape(leaf) for path, leaf in jax.tree.leaves_with_path(tree)}


def _describe_difference(stored: dict, expected: dict) -> str:
    for name in sorted(set(stored) | set(expected)):
        if stored.get(name) != expected.get(name):
            return f"{name}: stored {stored.get(name)}, model needs {expected.get(name)}"
    return "different structure"
