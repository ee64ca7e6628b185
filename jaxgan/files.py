"""Files that readers never see half-written, the workdir's one-writer lock, and the
errors of a full disk."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import socket
from typing import Iterator

from jaxgan.errors import WorkdirBusyError

log = logging.getLogger(__name__)


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


# errno values that mean the storage cannot take more data.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_no_space(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) says the storage is full: an
    ``OSError`` with ENOSPC/EDQUOT, a short write without an errno (numpy's), or a
    tensorstore error (Orbax's writes) that says "No space left"."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return True
        text = str(error)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        if isinstance(error, OSError) and error.errno is None and _SHORT_WRITE.search(text):
            return True  # numpy's tofile: "N requested and M written", the disk being full
        error = error.__cause__ or error.__context__
    return False


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system of ``path`` (or of its nearest existing parent);
    ``None`` if it cannot be read."""
    path = os.path.abspath(os.fspath(path))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def describe_bytes(count: int | None) -> str:
    if count is None:
        return "unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


LOCK_FILE = ".lock"


class WorkdirLock:
    """An exclusive lock on a workdir for one training process: ``flock`` on
    ``<workdir>/.lock``, which the kernel releases when the process ends however it ends
    (so a killed trainer leaves no stale lock: its file stays, and the next trainer takes
    it); a trainer that ends removes it. The file holds the holder's host and process id, for
    the message a second trainer gets. Readers (sampling, figures, evaluation) never take it.

    On a file system without locks (``flock`` failing with ENOLCK, EOPNOTSUPP or EINVAL, as
    some network file systems do) ``acquire`` logs one warning and goes on unlocked: a
    second trainer there would not be refused.
    """

    def __init__(self, workdir: str | os.PathLike):
        self.path = os.path.join(os.path.abspath(os.fspath(workdir)), LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> "WorkdirLock":
        """Takes the lock, or raises ``WorkdirBusyError`` naming its holder (touching
        nothing else in the workdir)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise WorkdirBusyError(
                    f"workdir {os.path.dirname(self.path)} is being trained by another process "
                    f"({holder}); wait for it to end or stop it, or train in another workdir "
                    "(sample, figures and evaluate can read it meanwhile)"
                ) from None
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    os.close(fd)
                    raise
                log.warning("workdir %s: its file system does not support locks (%s): a "
                            "second trainer on it would not be refused",
                            os.path.dirname(self.path),
                            errno.errorcode.get(error.errno, error.errno))
                break
            # The holder before us removes the file as it releases it: a lock on a file no
            # longer at the path is no lock, so try again with the one there now.
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:  # who holds it, for the message a second trainer gets
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"host {socket.gethostname()}, pid {os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, its holder goes unnamed
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        """Gives the lock up: removes the file (while still holding it) and closes it."""
        if self._fd is not None:
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
