"""The shape of progress callbacks, shared by every layer, and the silent one the library uses by default.

start_task(description, total) -> advance(texts, words=0, seconds=0.0): `total` None when the input's
size is unknown; `seconds` are seconds of inference, so that every rate is words per second of it."""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[..., None]
StartTask = Callable[[str, "int | None"], Advance]


def silent(n: int, words: int = 0, seconds: float = 0.0) -> None:
    """An advance that shows nothing."""


def no_progress(description: str, total: int | None) -> Advance:
    """A start_task that shows nothing: the library's default."""
    return silent
