"""Files that readers never see half-written."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block
    ends without an error (a reader, or a run killed midway, sees the old file or the new
    one, never part of one), removed when it raises.

    The temporary name keeps ``path``'s extension (``a.png`` -> ``a.tmp.png``), so writers
    that infer the format from it (Pillow, Matplotlib) still do.
    """
    root, extension = os.path.splitext(os.fspath(path))
    tmp = f"{root}.tmp{extension}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
