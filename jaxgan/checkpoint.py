"""Checkpoints of a ``GANState`` plus JSON metadata (data position, config), with Orbax.

Saving is atomic: Orbax writes each step into a temporary directory and renames it into place
only when it is complete, so a run killed mid-save leaves the previous checkpoints intact and
no half-written step is ever listed. Restoring walks back from the newest step: a checkpoint
that fails to restore (corrupted, truncated) is reported, moved aside to
``<step>.corrupt-<time>`` (kept, not deleted) and the previous one is tried.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgan.state import GANState

__all__ = ["Checkpointer", "CheckpointError"]

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint could be restored, or one does not fit the current model."""


def _to_saveable(state: GANState) -> GANState:
    # Orbax stores plain arrays; a typed PRNG key is stored as its raw uint32 data.
    return state.replace(key=jax.random.key_data(state.key))


class Checkpointer:
    """Saves and restores training checkpoints in ``directory``.

    Args:
      directory: where the numbered step directories live (created if missing).
      max_to_keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    def all_steps(self) -> list[int]:
        """The steps that have a complete checkpoint, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: GANState, meta: dict[str, Any]) -> None:
        """Saves ``state`` and the JSON-serializable ``meta`` as checkpoint ``step``.

        Returns once the arrays are copied off the device; the files are written in the
        background (``wait`` or ``close`` blocks until they are complete).
        """
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_to_saveable(state)), meta=ocp.args.JsonSave(meta)
            ),
        )

    def restore_latest(self, template: GANState) -> tuple[int, GANState, dict[str, Any]] | None:
        """Restores the newest checkpoint that restores cleanly, or ``None`` if there is none.

        Args:
          template: a state of the current model (e.g. from ``GAN.init``); it gives the tree
            structure, shapes, dtypes and shardings to restore into.

        Raises:
          CheckpointError: the checkpoints exist but their shapes do not fit ``template``
            (the model changed), or none of them could be read.
        """
        self._manager.wait_until_finished()
        steps = self.all_steps()
        if not steps:
            return None
        saveable = _to_saveable(template)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, saveable)
        expected = _shapes_by_name(saveable)
        failures = []
        for step in reversed(steps):
            try:
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
                        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                    ),
                )
            except CheckpointError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure means: try an older one
                failures.append(f"step {step}: {_first_line(error)}")
                moved = self._quarantine(step)
                log.warning(
                    "checkpoint %d is unreadable (%s); moved it to %s and trying the previous one",
                    step, _first_line(error), moved,
                )
                continue
            key_impl = jax.random.key_impl(template.key)
            state = restored.state.replace(
                key=jax.random.wrap_key_data(restored.state.key, impl=key_impl)
            )
            return step, state, dict(restored.meta)
        raise CheckpointError(
            f"no checkpoint in {self.directory} could be restored: " + "; ".join(failures)
        )

    def _quarantine(self, step: int) -> str:
        source = os.path.join(self.directory, str(step))
        target = f"{source}.corrupt-{int(time.time())}"
        if jax.process_index() == 0:  # one process renames; all wait for it
            os.rename(source, target)
        if jax.process_count() > 1:
            ocp.multihost.sync_global_processes(f"jaxgan_quarantine_{step}")
        self._manager.reload()
        return target

    def wait(self) -> None:
        """Blocks until every save in flight is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finishes pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


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
