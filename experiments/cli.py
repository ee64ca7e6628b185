"""What every command of this repository does alike with bad input: one line naming what to
fix, and a non-zero exit (2), before any work is done.

Used by ``experiments.mnist``, ``experiments.evaluate``, ``experiments.toy1d`` and
``benchmarks.train_step``. No JAX import here: errors in flags come back at once.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import typing

__all__ = ["Parser", "fail", "flag", "flag_words", "writable_directory", "output_file"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(message: str, status: int = 2) -> typing.NoReturn:
    """Prints ``error: message`` (one line) to stderr and exits with ``status``."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)


def flag(field: str) -> str:
    """The command-line spelling of a config field: ``batch_size`` -> ``--batch-size``."""
    return "--" + field.replace("_", "-")


def flag_words(error: Exception, fields) -> str:
    """A library error as the command line says it: a ``ConfigError``'s field becomes its
    flag (``batch_size: ...`` -> ``--batch-size: ...``), and so does every other field name
    with an underscore in the text (``set num_devices`` -> ``set --num-devices``); one-word
    field names (``steps``, ``data``) are ordinary words too and stay as they are."""
    field, message = getattr(error, "field", None), getattr(error, "message", None)
    text = f"{flag(field)}: {message}" if field and message is not None else str(error)
    for name in sorted((f for f in fields if "_" in f), key=len, reverse=True):
        text = re.sub(rf"(?<![-\w]){name}\b", flag(name), text)
    return text


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def writable_directory(path: str, flag: str) -> str:
    """``path`` as an absolute directory that exists (created if needed) and can be written;
    otherwise fails naming ``flag``."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        fail(f"{flag} {path} is a file, not a directory; choose another path")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        fail(f"{flag} {path} cannot be written ({_reason(error)}); choose a directory you can "
             "write to")
    return path


def output_file(path: str, flag: str, *, overwrite: bool | None) -> str:
    """``path`` as an absolute file path whose directory exists and can be written.

    An existing file: ``overwrite=False`` fails (naming ``--overwrite``), ``True`` allows it
    silently, ``None`` allows it and says so on stderr.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        fail(f"{flag} {path} is a directory; give a file name")
    writable_directory(os.path.dirname(path), flag)
    if os.path.exists(path):
        if overwrite is False:
            fail(f"{flag} {path} exists; choose another name or add --overwrite")
        if overwrite is None:
            print(f"replacing {path}", file=sys.stderr)
    return path
