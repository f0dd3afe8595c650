"""Predictions made in this process: one engine, one Classifier per method, rows handed back per batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from sentiq.core.engine import Engine
from sentiq.io.datasets import pool_for
from sentiq.methods.calibration import prior_from_record
from sentiq.methods.classifier import Classifier, label_set
from sentiq.methods.prompts import load_prompts
from sentiq.predictions import Prediction, labelled
from sentiq.progress import Advance
from sentiq.settings import MethodConfig
from sentiq.text import word_count

Keep = Callable[[list[dict[str, Any]]], None]  # labelled rows (predictions.LABELLED_FIELDS), per batch


class RunRecord(Protocol):
    """What a backend may read and add to the run it predicts for (a run folder, or one in memory)."""

    config: dict[str, Any]

    def record(self, **values: Any) -> None: ...

    def log(self, message: str) -> None: ...


class Predictor(Protocol):
    """A backend: where the model runs, and labelled rows for a method's texts."""

    where: dict[str, Any]  # what the run records after predicting (e.g. the workers' device)

    def describe(self) -> dict[str, Any]: ...

    def predict(
        self, method: MethodConfig, todo: pd.DataFrame, keep: Keep, advance: Advance, run: RunRecord
    ) -> None: ...

    def peak_memory_bytes(self) -> int | None: ...


@dataclass
class LocalPredictor:
    """evaluate's texts labelled in this process, each batch's rows kept as soon as it is done."""

    engine: Engine
    where: dict[str, Any] = field(default_factory=dict)  # nothing to add: describe() is what ran

    def describe(self) -> dict[str, Any]:
        return {
            **self.engine.lm.describe(),
            "engine": {"name": "local"},
            "max_batch_tokens": self.engine.batcher.max_tokens,
        }

    def predict(self, method: MethodConfig, todo: pd.DataFrame, keep: Keep, advance: Advance, run: RunRecord) -> None:
        """A prior estimated earlier in this run is reused, so a resumed run calibrates as it began."""
        recorded = run.config.get("calibration")
        prior = prior_from_record(recorded) if recorded else None

        def on_prior(calibration: dict[str, Any]) -> None:
            run.record(calibration=calibration)
            run.log(f"calibration {calibration}")

        prompts = load_prompts(method.prompt)
        pool = pool_for(method, label_set(prompts))  # k-shot's demonstrations, never the texts labelled here
        clf = Classifier(self.engine, method, pool=pool, prompts=prompts, prior=prior, on_prior=on_prior)
        clf.warm_up()
        texts, ids = list(todo["text"]), list(todo["id"])

        def on_done(idx: list[int], preds: list[Prediction], seconds: float) -> None:
            per_text = 1000 * seconds / max(1, len(idx))
            keep([labelled(ids[i], texts[i], p, per_text, clf.labels) for i, p in zip(idx, preds)])
            advance(len(idx), sum(word_count(texts[i]) for i in idx), seconds)

        clf.predict(texts, on_done)

    def peak_memory_bytes(self) -> int | None:
        return self.engine.peak_memory_bytes()
