"""Batches: which texts share a forward pass, running them with out-of-memory recovery, and what each
batch cost. Nothing here knows what a forward pass computes."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch

from sentiq.choices import TOKEN_BUDGETS
from sentiq.core.stages import StageClock
from sentiq.errors import ResourceError

log = logging.getLogger(__name__)
R = TypeVar("R")
SLACK = 0.1  # a full batch takes only texts within 10% of its longest
STATS_KEPT = 10_000  # the latest batches' costs kept for benchmarks; a service runs for weeks


@dataclass(frozen=True)
class Done(Generic[R]):
    """One finished batch: the input indices it held, what the work gave for them, and its seconds."""

    indices: list[int]
    result: R
    seconds: float


def gathered(batches: Iterable[Done[np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    """Batches of rows put back in input order: an array of `shape` (inputs, columns)."""
    out = np.zeros(shape)
    for done in batches:
        out[done.indices] = done.result
    return out


@dataclass
class BatchStat:
    rows: int
    tokens: int  # real (unpadded) tokens in the batch, without the shared prefix
    padded: int  # rows x longest row
    seconds: float


def default_token_budget(device_type: str) -> int:
    """Tokens per forward pass on this kind of device (settings.TOKEN_BUDGETS; others as the CPU)."""
    return TOKEN_BUDGETS.get(device_type, TOKEN_BUDGETS["cpu"])


def default_fill(device_type: str, max_tokens: int) -> int:
    """Padded tokens a batch takes from its length-sorted neighbours before it keeps to tight buckets.

    On a CPU every padded token costs real time: none (tight buckets only). On an accelerator a pass
    costs a fixed launch overhead plus its tokens, so small passes waste the device while one pass as
    large as the budget pads short texts to the longest; a quarter of the budget sits between the two
    (the passes and padding of each choice: docs/performance.md)."""
    return 0 if device_type == "cpu" else max_tokens // 4


def plan_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_rows: int | None = None,
    slack: float = SLACK,
    shared: int = 0,
    fill: int = 0,
) -> list[list[int]]:
    """Indices grouped into batches, longest first (memory errors surface at once), each within
    `max_tokens` once padded, counting per row the `shared` prefix tokens its cache copy holds. A
    text joins a batch while the batch holds fewer than `fill` padded tokens, and after that only if
    padding wastes at most `slack` of the longest row."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            current = batches[-1]
            longest = lengths[current[0]] + shared
            fits = (len(current) + 1) * longest <= max_tokens
            fits = fits and (max_rows is None or len(current) < max_rows)
            close = len(current) * longest < fill or lengths[i] >= (1 - slack) * lengths[current[0]]
            if fits and close:
                current.append(i)
                continue
        batches.append([i])
    return batches


@dataclass
class BatchPlanner:
    """Runs work over token-budget batches, yielding each as it finishes. A GPU memory error halves the
    budget for the rest of that call only: the next call (the next method of a run, say) starts from the
    full budget again."""

    max_tokens: int
    max_rows: int | None = None
    slack: float = SLACK
    fill: int = 0  # see default_fill
    sync: Callable[[], None] = lambda: None  # wait for the device, so clocks measure finished work
    free_memory: Callable[[], None] = lambda: None
    clock: StageClock = field(default_factory=StageClock)
    stats: deque[BatchStat] = field(default_factory=lambda: deque(maxlen=STATS_KEPT))  # the latest batches

    def run(
        self, lengths: list[int], work: Callable[[list[int]], R], rows_per_item: int = 1, shared: int = 0
    ) -> Iterator[Done[R]]:
        budget = self.max_tokens
        pending = list(range(len(lengths)))
        while pending:
            rows = None if self.max_rows is None else max(1, self.max_rows // rows_per_item)
            per_item, fill = max(1, budget // rows_per_item), self.fill // rows_per_item
            with self.clock.stage("plan"):
                plan = plan_batches([lengths[i] for i in pending], per_item, rows, self.slack, shared, fill)
            failed, finished = None, set()
            for idx in ([pending[j] for j in b] for b in plan):
                done = self._run_one(idx, lengths, work)
                if done is None:
                    failed = idx
                    break
                finished.update(idx)
                yield done
            if failed is None:
                return
            # Out of the except block, the failed batch's tensors are unreferenced and can be freed.
            self.free_memory()
            if len(failed) == 1:  # a single text that does not fit: nothing left to shrink
                raise ResourceError(
                    f"out of memory on one text of {lengths[failed[0]]} tokens: lower --max-tokens, "
                    "or use a smaller model or dtype"
                )
            budget = max(1, budget // 2)
            log.warning(
                "out of memory on a batch of %d texts: token budget halved to %d for the rest of this pass",
                len(failed),
                budget,
            )
            pending = [i for i in pending if i not in finished]

    def _run_one(self, idx: list[int], lengths: list[int], work: Callable[[list[int]], R]) -> Done[R] | None:
        """One batch, timed; None when it ran out of memory."""
        start = time.perf_counter()
        try:
            with self.clock.stage("forward"):
                result = work(idx)
                self.sync()
        except torch.OutOfMemoryError:
            return None
        seconds = time.perf_counter() - start
        longest = max(lengths[i] for i in idx)
        self.stats.append(BatchStat(len(idx), sum(lengths[i] for i in idx), longest * len(idx), seconds))
        return Done(idx, result, seconds)
