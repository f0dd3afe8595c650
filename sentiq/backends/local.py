"""Predictions made in this process: one engine, one runner per method, labelled rows a batch at a time.
`labelled_batches` is the one place finished batches become labelled rows (Ray's workers use it too)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from sentiq.core.engine import Engine
from sentiq.methods.calibration import prior_from_record
from sentiq.methods.plan import MethodPlan
from sentiq.methods.runner import MethodRunner, make_runner
from sentiq.predictions import labelled
from sentiq.results import CalibrationRecord
from sentiq.text import word_count


@dataclass(frozen=True)
class Labelled:
    """Rows labelled by a backend (predictions.LABELLED_FIELDS), with their words and seconds and, once,
    the calibration prior estimated before them."""

    rows: list[dict[str, Any]]
    words: int
    seconds: float
    calibration: CalibrationRecord | None = None


class Predictor(Protocol):
    """A backend: where the model runs, and labelled rows for a method's texts."""

    where: dict[str, Any]  # what the run records after predicting (e.g. the workers' device)

    def describe(self) -> dict[str, Any]: ...

    def predict(
        self, plan: MethodPlan, todo: pd.DataFrame, calibration: CalibrationRecord | None = None
    ) -> Iterator[Labelled]: ...

    def peak_memory_bytes(self) -> int | None: ...


def labelled_batches(runner: MethodRunner, ids: Sequence[str], texts: Sequence[str]) -> Iterator[Labelled]:
    """The texts' labelled rows (predictions.LABELLED_FIELDS), a batch at a time as the runner finishes
    them; each row carries its share of its batch's time."""
    for batch in runner.predict_batches(texts):
        per_text = 1000 * batch.seconds / max(1, len(batch.indices))
        rows = [
            labelled(ids[i], texts[i], p, per_text, runner.label_set) for i, p in zip(batch.indices, batch.predictions)
        ]
        words = sum(word_count(texts[i]) for i in batch.indices)
        yield Labelled(rows, words, batch.seconds, batch.calibration)


@dataclass
class LocalPredictor:
    """Texts labelled in this process, each batch's rows handed on as soon as it is done. The runner of the
    last plan is kept, so a stream of chunks binds its method (and keeps its calibration prior) once."""

    engine: Engine
    where: dict[str, Any] = field(default_factory=dict)  # nothing to add: describe() is what ran
    _bound: tuple[MethodPlan, MethodRunner] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            **self.engine.lm.describe(),
            "engine": {"name": "local"},
            "max_batch_tokens": self.engine.planner.max_tokens,
        }

    def predict(
        self, plan: MethodPlan, todo: pd.DataFrame, calibration: CalibrationRecord | None = None
    ) -> Iterator[Labelled]:
        """`calibration`: the prior recorded earlier in this run, reused so a resumed run calibrates as it
        began."""
        yield from labelled_batches(self.runner(plan, calibration), list(todo["id"]), list(todo["text"]))

    def runner(self, plan: MethodPlan, calibration: CalibrationRecord | None = None) -> MethodRunner:
        """The plan bound to the engine, once per plan."""
        if self._bound is None or self._bound[0] is not plan:
            prior = prior_from_record(calibration) if calibration else None
            self._bound = (plan, make_runner(self.engine, plan, prior))
        return self._bound[1]

    def peak_memory_bytes(self) -> int | None:
        return self.engine.peak_memory_bytes()
