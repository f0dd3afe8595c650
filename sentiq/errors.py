"""Errors a user can cause or fix. The CLI turns each into one line on stderr and exit code 1."""

from __future__ import annotations


class SentiqError(Exception):
    """Base class: the message says what went wrong and how to fix it."""


class DataError(SentiqError):
    """A dataset, file, column or label that cannot be used."""


class ModelError(SentiqError):
    """A model that cannot be found, downloaded or loaded."""


class OptionError(SentiqError):
    """An option value that makes no sense (beyond what Typer checks)."""


class RunError(SentiqError):
    """A run folder that cannot be written, read or resumed."""


class ResourceError(SentiqError):
    """The device ran out of memory even for the smallest possible batch."""
