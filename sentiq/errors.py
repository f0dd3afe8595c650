"""Errors a user can cause or fix. The CLI turns each into one line on stderr and exit code 1."""

from __future__ import annotations

import os


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
