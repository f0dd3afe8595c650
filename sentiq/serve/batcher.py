"""Dynamic batching: the texts of concurrent requests join one classifier call, made on one worker thread
so the event loop keeps answering; a bounded queue refuses what it cannot hold at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sentiq.text import word_count


class Overloaded(Exception):
    """The queue holds as many texts as it may: the request is refused now rather than left waiting."""


class Stopped(Exception):
    """The service is draining: it finishes what it holds and takes nothing new."""


@dataclass
class _Job:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class Pass:
    """One classifier call, for the metrics."""

    texts: int
    requests: int
    words: int
    seconds: float


class RequestBatcher:
    """Requests in, one worker thread out: each pass takes the queued requests in order, up to
    `max_batch_texts` texts, waiting up to `max_wait_s` after the first for more to join while
    `arriving()` says requests are on their way (with batching off, one request a pass). A pass that fails
    is retried one request at a time, so a request's own failure fails that request only."""

    def __init__(
        self,
        classify: Callable[[list[str]], Sequence[Any]],
        *,
        batching: bool = True,
        max_batch_texts: int = 64,
        max_wait_s: float = 0.005,
        queue_texts: int = 1024,
        on_pass: Callable[[Pass], None] | None = None,
        arriving: Callable[[], int] | None = None,
    ) -> None:
        self._classify = classify
        self.batching, self.max_batch_texts, self.max_wait_s = batching, max_batch_texts, max_wait_s
        self.queue_texts = queue_texts
        self._on_pass = on_pass or (lambda p: None)
        self._arriving = arriving or (lambda: 1)  # unknown: always worth the wait
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # texts waiting, not yet taken by a pass
        self._busy = 0  # texts in the pass being made
        self._ready = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="sentiq-batcher", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        """Texts waiting for a pass."""
        return self._queued

    @property
    def in_flight(self) -> int:
        """Texts waiting or being classified."""
        return self._queued + self._busy

    async def submit(self, texts: list[str]) -> list[Any]:
        """The classifier's results for `texts`, in order, once a pass has made them."""
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop, loop.create_future())
        with self._ready:
            if self._stopping:
                raise Stopped("the service is shutting down")
            if self._queued + len(texts) > self.queue_texts:
                raise Overloaded(f"the queue holds {self._queued} texts of at most {self.queue_texts}")
            self._jobs.append(job)
            self._queued += len(texts)
            self._ready.notify()
        return await job.future

    def stop(self, timeout: float | None = None) -> None:
        """Take nothing new, finish every request already queued, then end the worker."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._worker.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._process(batch)

    def _take(self) -> list[_Job] | None:
        """The next pass's requests, or None once stopping with nothing left."""
        with self._ready:
            while not self._live():
                if self._stopping:
                    return None
                self._ready.wait()
            batch = [self._jobs.popleft()]
            size = len(batch[0].texts)
            deadline = batch[0].queued_at + self.max_wait_s
            while self.batching and size < self.max_batch_texts:
                if self._live():
                    if size + len(self._jobs[0].texts) > self.max_batch_texts:
                        break
                    batch.append(self._jobs.popleft())
                    size += len(batch[-1].texts)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping or not self._arriving():  # a lone client does not wait
                    break
                self._ready.wait(left)
            self._queued -= size
            self._busy = size
        return batch

    def _live(self) -> bool:
        """Whether a request waits, its queue's head: requests that gave up (timed out) leave the queue
        unclassified."""
        while self._jobs and self._jobs[0].future.done():
            self._queued -= len(self._jobs.popleft().texts)
        return bool(self._jobs)

    def _process(self, batch: list[_Job]) -> None:
        texts = [t for job in batch for t in job.texts]
        start = time.perf_counter()
        try:
            results = list(self._classify(texts))
        except Exception as exc:
            if len(batch) > 1:  # whose text failed it? each request alone, then
                for job in batch:
                    self._process([job])
            else:
                _settle(batch[0], error=exc)
            return
        finally:
            self._busy = 0
        words = sum(map(word_count, texts))
        self._on_pass(Pass(len(texts), len(batch), words, time.perf_counter() - start))
        at = 0
        for job in batch:
            _settle(job, results[at : at + len(job.texts)])
            at += len(job.texts)


def _settle(job: _Job, results: list[Any] | None = None, error: BaseException | None = None) -> None:
    """Hand a request its results (or its error) on its own event loop; one that gave up is skipped."""

    def done() -> None:
        if job.future.done():  # timed out or the client went away
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(results)

    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
        job.loop.call_soon_threadsafe(done)
