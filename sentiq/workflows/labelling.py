"""A classify run as one stream of steps, local or on Ray alike: whoever labels yields Steps; the stream
writes each finished chunk to the output in the input's order, keeps the calibration prior beside it and
folds the summary from the steps, and its consumer (the library, the command line) shows progress and
rows from the same steps. Used as a context manager, it leaves an interrupted output ready for --resume."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from sentiq.core.stages import StageClock
from sentiq.errors import DataError, Interrupted, OptionError, OutputClosed, listed
from sentiq.io.files import write_json
from sentiq.io.sinks import Sink
from sentiq.predictions import UNCERTAIN
from sentiq.results import CalibrationRecord, Summary


@dataclass(frozen=True)
class Step:
    """What one finished batch adds. `rows`: output rows, each at its `order` (its place in the chunk);
    the stream hands its consumer a chunk's rows, in that order, on the step that ends the chunk."""

    rows: tuple[dict[str, Any], ...] = ()
    order: tuple[int, ...] = ()
    chunk_end: bool = False
    texts: int = 0  # labelled
    words: int = 0
    seconds: float = 0.0
    truncated: int = 0
    skipped: int = 0  # already in the output (--resume)
    empty: tuple[str, ...] = ()  # where the empty texts are: reported, never labelled
    calibration: CalibrationRecord | None = None  # the prior, on the step after it was estimated

    @property
    def done(self) -> int:
        """Texts this step settles, for a progress bar."""
        return self.texts + self.skipped + len(self.empty)


def folded(summary: Summary, step: Step) -> Summary:
    """The summary with one more step."""
    return replace(
        summary,
        texts=summary.texts + step.texts,
        skipped=summary.skipped + step.skipped,
        words=summary.words + step.words,
        seconds=summary.seconds + step.seconds,
        truncated=summary.truncated + step.truncated,
        uncertain=summary.uncertain + sum(r.get("label") == UNCERTAIN for r in step.rows),
        exits=dict(
            sorted((Counter(summary.exits) + Counter(int(r["exit"]) for r in step.rows if "exit" in r)).items())
        ),
        empty=[*summary.empty, *step.empty],
        calibration=step.calibration or summary.calibration,
    )


class Labelling:
    """Iterate it, once, for its steps; read `summary` once the loop ends. Inside `with`, an interrupt
    (Ctrl-C, a closed stdout) ends in one line that says where the labels are; a loop left early keeps
    what it labelled either way. `title` and `total` name the work for a progress bar (`progress` False:
    the backend shows its own)."""

    def __init__(
        self,
        steps: Iterator[Step],
        summary: Summary,
        *,
        title: str,
        total: int | None,
        sink: Sink | None = None,
        clock: StageClock | None = None,
        progress: bool = True,
    ) -> None:
        self.summary, self.title, self.total, self.progress = summary, title, total, progress
        self._steps, self._sink, self._clock = steps, sink, clock or StageClock()
        self._pending: list[tuple[int, dict[str, Any]]] = []  # the current chunk's rows, until it ends
        self._state: Literal["new", "reading", "finished", "closed"] = "new"

    def __enter__(self) -> Labelling:
        return self

    def __iter__(self) -> Iterator[Step]:
        if self._state != "new":
            raise OptionError("a classify stream is read once: make another to label the texts again")
        self._state = "reading"
        try:
            for step in self._steps:
                self._pending += zip(step.order, step.rows)
                rows = self._flush() if step.chunk_end else []
                if step.calibration is not None:
                    self._keep(step.calibration)
                self.summary = folded(self.summary, step)
                yield replace(step, rows=tuple(rows), order=())
            self._finish()
        finally:
            if self._state == "reading":  # interrupted, failed, or a loop left early: keep what was labelled
                self._close_for_resume()
                if hasattr(self._steps, "close"):  # the labelling under way stops too (its heap thawed)
                    self._steps.close()

    def _flush(self) -> list[dict[str, Any]]:
        """The chunk's rows in the input's order, written."""
        rows = [row for _, row in sorted(self._pending, key=lambda pair: pair[0])]
        self._pending = []
        if self._sink is not None and rows:
            with self._clock.stage("write"):
                self._sink.write(rows)
        return rows

    def _keep(self, calibration: CalibrationRecord) -> None:
        """The prior goes beside the output, so that a resumed run divides out the prior it began with."""
        if self.summary.output is not None:
            write_json(calibration_path(self.summary.output), calibration.as_dict())

    def _finish(self) -> None:
        self._state = "finished"
        if self._sink is not None:
            self._sink.finish()
            self.summary = replace(self.summary, already_complete=self._sink.complete)
        if not self.summary.texts and not self.summary.skipped:
            raise DataError(f"nothing to classify: every text is empty ({listed(self.summary.empty)})")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> bool:
        """An interrupted or closed stream keeps the rows labelled so far, and says where they are."""
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            kept = self._close_for_resume() or "nothing was written (--output FILE keeps labels)"
            raise Interrupted(f"interrupted; {kept}") from None
        if kind is not None and issubclass(kind, BrokenPipeError):
            raise OutputClosed(self._close_for_resume()) from None
        return False

    def _close_for_resume(self) -> str:
        if self._sink is None:
            return ""
        if self._state != "closed":
            self._state = "closed"
            self._flush()  # an interrupted chunk keeps its done rows
            self._sink.close()
        return f"{self._sink.written} labels are in {self._sink.path}: the same command with --resume continues"


def calibration_path(output: Path) -> Path:
    return output.with_name(output.name + ".calibration.json")


def calibration_kept(output: Path | None, resume: bool, calibrate: str) -> CalibrationRecord | None:
    """The calibration a resumed output began with, when it calibrated as this run does."""
    if not resume or output is None:
        return None
    record = calibration_path(output)
    kept = json.loads(record.read_text()) if record.is_file() else None
    return CalibrationRecord.of(kept) if isinstance(kept, dict) and kept.get("mode") == calibrate else None
