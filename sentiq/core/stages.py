"""Where the host time goes: seconds per named stage (tokenize, plan, forward, post-process, read,
write), measured by the code that runs them so that a benchmark reads them without wrapping anything.
A stage entered inside another pauses it, so the stages add up to no more than the wall time."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class StageClock:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    _open: list[tuple[str, float]] = field(default_factory=list)  # (stage, counted since), innermost last

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._count_open()
        self._open.append((name, time.perf_counter()))
        try:
            yield
        finally:
            self._count_open()
            self._open.pop()
            if self._open:
                self._open[-1] = (self._open[-1][0], time.perf_counter())

    def _count_open(self) -> None:
        """Add the innermost open stage's time so far, and count it again from now."""
        if self._open:
            name, since = self._open[-1]
            now = time.perf_counter()
            self.seconds[name] += now - since
            self._open[-1] = (name, now)

    def clear(self) -> None:
        self.seconds.clear()
