"""What every command of this repository does alike with bad input: one line naming what to
fix, and a non-zero exit (2), before any work is done.

Used by ``experiments.mnist``, ``experiments.evaluate``, ``experiments.toy1d`` and
``benchmarks.train_step``. No JAX import here: errors in flags come back at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import tempfile
import types
import typing
from typing import Any, Callable

__all__ = [
    "Parser", "fail", "flag", "flag_words", "field_docs", "add_config_flags", "given_fields",
    "writable_directory", "output_file", "writing_or_fail", "STORAGE_FULL_STATUS",
    "BUSY_STATUS",
]


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


def field_docs(cls: type) -> dict[str, str]:
    """Each field's text from the ``Attributes:`` section of a dataclass's docstring, as one
    line without reST markup (``a, b: text`` documents both ``a`` and ``b``). The command
    line's help is the config's own documentation, not a copy of it."""
    docs: dict[str, str] = {}
    lines = inspect.getdoc(cls).splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1
    names: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the next section
        entry = re.match(r"^  (\w+(?:, \w+)*): (.*)$", line)
        if entry:
            names = entry[1].split(", ")
            for name in names:
                docs[name] = entry[2]
        elif line.strip():
            for name in names:
                docs[name] += " " + line.strip()
    return {name: text.replace("``", "") for name, text in docs.items()}


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _converter(hint: Any, none_words: tuple[str, ...]) -> tuple[Callable[[str], Any], str | None]:
    """``(type, metavar)`` for argparse from a field's type hint."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    optional = type(None) in options
    base = next((o for o in options if o is not type(None)), hint) if optional else hint

    if base is bool:
        def convert(text: str):
            try:
                return _bool(text)
            except argparse.ArgumentTypeError:
                raise ValueError(text) from None
        expected, metavar = "true or false", "BOOL"
    elif typing.get_origin(base) is tuple and typing.get_args(base)[:1] == (str,):
        def convert(text: str):
            return tuple(part for part in text.split(",") if part)
        expected, metavar = "comma-separated words", "A,B,..."
    elif typing.get_origin(base) is tuple:
        def convert(text: str):
            return tuple(int(part) for part in text.split(","))
        expected, metavar = "comma-separated integers", "N,N,..."
    elif base in (int, float, str):
        convert, expected, metavar = base, f"a{'n' if base is int else ''} {base.__name__}", None
    else:
        raise TypeError(f"no command-line form for fields of type {hint!r}")

    def parse(text: str):
        if optional and text.lower() in none_words:
            return None
        try:
            return convert(text)
        except ValueError:
            words = " or ".join(repr(w) for w in none_words) if optional else ""
            raise argparse.ArgumentTypeError(
                f"expected {expected}{' or ' + words if words else ''}, got {text!r}"
            )

    return parse, metavar


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    defaults: Any,
    choices: dict[str, tuple[str, ...]] | None = None,
    none_words: dict[str, tuple[str, ...]] | None = None,
    extra_help: Callable[[str], str] | None = None,
) -> None:
    """One flag per field of the dataclass ``cls``: ``--kebab-case-name``, typed by the
    field's annotation, documented by its docstring (``field_docs``), showing its value in
    ``defaults``. Only flags given on the command line land in the namespace (read them with
    ``given_fields``), so a preset's values stay unless overridden.

    Args:
      parser: where to add the flags.
      cls: a dataclass whose fields are ``int``, ``float``, ``str``, ``bool``,
        ``tuple[int, ...]``, ``tuple[str, ...]`` (comma-separated) or any of those ``| None``
        (``bool | None``: true, false or a none word).
      defaults: an instance whose values the help shows.
      choices: the allowed values of string fields.
      none_words: words meaning ``None`` per optional field (default ``("none",)``).
      extra_help: more help text per field name.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    choices, none_words = choices or {}, none_words or {}
    for field in dataclasses.fields(cls):
        name = field.name
        value = getattr(defaults, name)
        words = none_words.get(name, ("none",))
        shown = words[0] if value is None else (
            ",".join(map(str, value)) if isinstance(value, tuple) else value
        )
        text = f"{docs.get(name, name)} (default: {shown}){extra_help(name) if extra_help else ''}"
        kwargs: dict[str, Any] = dict(default=argparse.SUPPRESS, help=text.replace("%", "%%"))
        if name in choices:
            kwargs["choices"] = choices[name]
        elif hints[name] is bool:  # "--multihost" alone means true
            kwargs.update(type=_bool, nargs="?", const=True, metavar="BOOL")
        else:
            kwargs["type"], metavar = _converter(hints[name], words)
            if metavar:
                kwargs["metavar"] = metavar
            if metavar == "BOOL":  # bool | None: "--conditional" alone means true too
                kwargs.update(nargs="?", const=True)
        parser.add_argument(flag(name), dest=name, **kwargs)


def given_fields(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given as flags (``add_config_flags``), by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def writable_directory(path: str, flag: str) -> str:
    """``path`` as an absolute directory that exists (created if needed) and can be written;
    otherwise fails naming ``flag``."""
    path = os.path.abspath(os.path.expanduser(path))
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


# Exit statuses beside 2 (bad input), documented in docs/checkpoints.md.
STORAGE_FULL_STATUS = 74  # EX_IOERR: the storage is full; free space and run it again
BUSY_STATUS = 75  # EX_TEMPFAIL: another trainer holds the workdir; try again when it ends


class writing_or_fail:
    """Writes an output file through ``jaxgan.files.atomic_path`` (``with writing_or_fail(p)
    as tmp: save(tmp)``): no half-written file is ever left, and a full disk ends the
    command in one line with status 74."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> str:
        from jaxgan.files import atomic_path

        self._context = atomic_path(self.path)
        return self._context.__enter__()

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            self._context.__exit__(kind, error, traceback)  # the rename, or the clean-up
        except OSError as raised:
            error = raised
        from jaxgan.files import describe_bytes, free_bytes, is_no_space

        if isinstance(error, OSError) and is_no_space(error):
            fail(f"no space left on the device writing {self.path} "
                 f"({describe_bytes(free_bytes(self.path))} free); free space and run the "
                 "same command", status=STORAGE_FULL_STATUS)
        if error is not None and kind is None:
            raise error
        return False
