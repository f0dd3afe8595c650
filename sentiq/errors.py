"""Errors a user can cause or fix. The CLI turns each into one line on stderr and exit code 1."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_COMMAND_LINE: ContextVar[bool] = ContextVar("sentiq_command_line", default=False)
_COMMAND = re.compile(r"('sentiq [^']*')")
_KEYWORDS = {"batch-tokens": "max_batch_tokens"}  # options whose keyword argument has another name
_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)(?: (-?\d[\d.,]*)\b)?")


def debugging() -> bool:
    """SENTIQ_DEBUG=1: tracebacks and libraries' own output instead of one-line errors."""
    return os.environ.get("SENTIQ_DEBUG", "") not in ("", "0")


def first_line(exc: BaseException) -> str:
    """A library exception's first line, for a one-line message (its type when it says nothing)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def listed(items: list[str], shown: int = 10) -> str:
    """The first few of many, for a one-line message: 'a, b, c and 7 more'."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


class SentiqError(Exception):
    """Base class: the message says what went wrong and how to fix it."""


class DataError(SentiqError):
    """A dataset, file, column or label that cannot be used."""


class UnknownLabels(DataError):
    """Label values a label set cannot read: a value outside the label map, or a map naming no label."""


class ModelError(SentiqError):
    """A model that cannot be found, downloaded or loaded."""


class OptionError(SentiqError):
    """An option value that makes no sense (beyond what Typer checks)."""


class RunError(SentiqError):
    """A run folder that cannot be written, read or resumed."""


class ResourceError(SentiqError):
    """The device ran out of memory even for the smallest possible batch."""


class Interrupted(SentiqError):
    """Ctrl-C or SIGTERM; the message says what was kept and how to go on. Exit code 130."""


class OutputClosed(SentiqError):
    """Whatever read standard output stopped (`| head`): the message says what --output keeps, if any.
    Exit code 141, as for a Unix tool ended by SIGPIPE."""


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Errors raised inside keep the command line's --options: a command is running."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def in_python_terms(message: str) -> str:
    """A message's --options as the keyword arguments a Python caller passes: '--label-map' becomes
    'label_map', '--n 200' becomes 'n=200'."""

    def keyword(m: re.Match[str]) -> str:
        name = _KEYWORDS.get(m.group(1), m.group(1).replace("-", "_"))
        return f"{name}={m.group(2)}" if m.group(2) else name

    parts = _COMMAND.split(message)  # a command to run, quoted, keeps its options
    return "".join(part if i % 2 else _OPTION.sub(keyword, part) for i, part in enumerate(parts))


def speaks_python(func: F) -> F:
    """A library function whose errors name keyword arguments when a Python caller called it (the
    command line, which calls the same functions, keeps its --options)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SentiqError as exc:
            if not _COMMAND_LINE.get() and exc.args and isinstance(exc.args[0], str):
                exc.args = (in_python_terms(exc.args[0]), *exc.args[1:])
            raise

    return wrapper  # type: ignore[return-value]
