"""Predictions made in this process: one engine, one runner per method, labelled rows a batch at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from sentiq.core.engine import Engine
from sentiq.methods.calibration import prior_from_record
from sentiq.methods.plan import MethodPlan
from sentiq.methods.runner import make_runner
from sentiq.predictions import labelled
from sentiq.text import word_count


@dataclass(frozen=True)
class Labelled:
    """Rows labelled by a backend (predictions.LABELLED_FIELDS), with their words and seconds and, once,
    the calibration prior estimated before them."""

    rows: list[dict[str, Any]]
    words: int
    seconds: float
    calibration: dict[str, Any] | None = None


class Predictor(Protocol):
    """A backend: where the model runs, and labelled rows for a method's texts."""

    where: dict[str, Any]  # what the run records after predicting (e.g. the workers' device)

    def describe(self) -> dict[str, Any]: ...

    def predict(
        self, plan: MethodPlan, todo: pd.DataFrame, calibration: dict[str, Any] | None = None
    ) -> Iterator[Labelled]: ...

    def peak_memory_bytes(self) -> int | None: ...


@dataclass
class LocalPredictor:
    """evaluate's texts labelled in this process, each batch's rows handed on as soon as it is done."""

    engine: Engine
    where: dict[str, Any] = field(default_factory=dict)  # nothing to add: describe() is what ran

    def describe(self) -> dict[str, Any]:
        return {
            **self.engine.lm.describe(),
            "engine": {"name": "local"},
            "max_batch_tokens": self.engine.planner.max_tokens,
        }

    def predict(
        self, plan: MethodPlan, todo: pd.DataFrame, calibration: dict[str, Any] | None = None
    ) -> Iterator[Labelled]:
        """`calibration`: the prior recorded earlier in this run, reused so a resumed run calibrates as it
        began."""
        runner = make_runner(self.engine, plan, prior_from_record(calibration) if calibration else None)
        texts, ids = list(todo["text"]), list(todo["id"])
        for batch in runner.predict_batches(texts):
            per_text = 1000 * batch.seconds / max(1, len(batch.indices))
            rows = [
                labelled(ids[i], texts[i], p, per_text, plan.labels) for i, p in zip(batch.indices, batch.predictions)
            ]
            words = sum(word_count(texts[i]) for i in batch.indices)
            yield Labelled(rows, words, batch.seconds, batch.calibration)

    def peak_memory_bytes(self) -> int | None:
        return self.engine.peak_memory_bytes()
