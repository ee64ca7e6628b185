"""The errors of jaxgan's data, configs, workdirs and runs.

Each one's message is a single line that names what to fix (the field, the path, the step),
so a command can print it as it is and exit non-zero. Nothing a run trained is lost when
one is raised: the messages say what was kept.
"""

from __future__ import annotations

import errno

__all__ = [
    "ConfigError",
    "DataError",
    "WorkdirError",
    "WorkdirBusyError",
    "StorageFullError",
    "CheckpointError",
    "NonFiniteLossError",
]


class ConfigError(ValueError):
    """A configuration value is invalid: ``field`` names the ``TrainConfig`` field,
    ``message`` says what is wrong with its value (other fields are named as in Python; the
    command line turns names into flags, ``experiments.cli.flag_words``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DataError(ValueError):
    """The data cannot be loaded or does not fit; the message is one line naming what to fix."""


class WorkdirError(ValueError):
    """A run directory cannot be used: not a directory, not writable, its ``config.json`` is
    unreadable, or it holds another run. The message is one line that names the path."""


class WorkdirBusyError(RuntimeError):
    """Another process holds a workdir's training lock; the message is one line naming it."""


class StorageFullError(OSError):
    """A write failed for want of space (ENOSPC, EDQUOT); the message is one line naming the
    path, the free space there, and what was kept. ``path`` is the path being written."""

    def __init__(self, message: str, path: str, *, final: bool = False):
        super().__init__(errno.ENOSPC, message)
        self.path = path
        self.final = final  # the message says what was kept and how to resume

    def __str__(self) -> str:
        return self.strerror


class CheckpointError(RuntimeError):
    """No usable checkpoint could be restored, or one does not fit the current model."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; ``step`` is the first iteration where it did."""

    def __init__(self, step: int, metrics: dict[str, float], last_checkpoint: int | None):
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        kept = (
            f"the last good checkpoint (step {last_checkpoint}) is kept"
            if last_checkpoint is not None
            else "no checkpoint was written yet"
        )
        super().__init__(f"non-finite loss at step {step} ({shown}); stopped, {kept}")
        self.step = step
