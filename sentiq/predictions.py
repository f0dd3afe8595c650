"""One prediction, and the one schema its rows take wherever they go: classify's output, a run's
predictions.csv, the rows a backend hands back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sentiq.text import LABELS, word_count

PROBABILITY_DIGITS = 6  # what a float32 score holds, and what outputs write
INVALID = "invalid"  # a generated answer that names no label, or several


@dataclass
class Prediction:
    label: str  # a label name, or 'invalid'
    p_positive: float | None  # scoring: softmax over label scores; several answers: share of positive votes
    p_positive_raw: float | None = None  # before calibration, when calibrated
    answer: str | None = None  # generated text (answers joined by ' | ' when there are several)
    tokens: int = 0  # prompt tokens specific to this text (the whole prompt's when encoded whole), all prompts
    truncated: bool = False
    scores: dict[str, float] | None = None  # every label's probability (as p_positive is positive's)

    @classmethod
    def of(
        cls, label: str, probs: Sequence[float], labels: Sequence[str], raw: Sequence[float] | None = None, **more: Any
    ) -> Prediction:
        """A prediction with every label's probability (and, calibrated, the one before); p_positive is
        set for the binary labels only."""
        scores = dict(zip(labels, map(float, probs)))
        before = dict(zip(labels, map(float, raw))) if raw is not None else {}
        binary = tuple(labels) == LABELS
        positive = (scores["positive"], before.get("positive")) if binary else (None, None)
        return cls(label, *positive, scores=scores, **more)

    def row(self) -> dict[str, Any]:
        """The schema's fields (`scores` apart: its columns depend on the label set)."""
        return {f: getattr(self, f) for f in PREDICTION_FIELDS}


def top_label(probs: Sequence[float], labels: Sequence[str]) -> tuple[str, str | None]:
    """The most probable label, and None; when several labels share the top probability exactly, no
    label wins by its position: INVALID, and an answer naming the tied labels."""
    best = max(probs)
    tied = [label for label, p in zip(labels, probs) if p == best]
    if len(tied) == 1:
        return tied[0], None
    return INVALID, f"tie: {' = '.join(tied)}"


PREDICTION_FIELDS = tuple(f for f in Prediction.__dataclass_fields__ if f != "scores")
# A labelled row as a backend hands it back: the text's id and text, the prediction, its share of the
# batch's time.
LABELLED_FIELDS = ("id", "text", *PREDICTION_FIELDS, "latency_ms")


def probability_fields(labels: Sequence[str] = LABELS) -> tuple[str, ...]:
    """The columns of a label set's probabilities: p_positive for the binary labels (as ever), p_<label>
    for every label of another set."""
    return ("p_positive",) if tuple(labels) == LABELS else tuple(f"p_{label}" for label in labels)


def output_fields(labels: Sequence[str] = LABELS, answers: bool = True) -> tuple[str, ...]:
    """What classify writes beside the id and the kept columns: the label, the probabilities and, for
    a method that generates (`answers`), the answer (a scoring method would leave it empty)."""
    return ("label", *probability_fields(labels), *(("answer",) if answers else ()))


def output_row(prediction: Prediction, labels: Sequence[str] = LABELS, answers: bool = True) -> dict[str, Any]:
    """An output's fields for one prediction, probabilities to PROBABILITY_DIGITS."""
    scores = prediction.scores or {}
    probs = [prediction.p_positive] if tuple(labels) == LABELS else [scores.get(label) for label in labels]
    row = {"label": prediction.label, **{f: _rounded(p) for f, p in zip(probability_fields(labels), probs)}}
    return row | {"answer": prediction.answer} if answers else row


def _rounded(p: float | None) -> float | None:
    return None if p is None else round(float(p), PROBABILITY_DIGITS)


RUN_FIELDS = (  # a run's predictions.csv
    *("id", "gold", "predicted", "p_positive", "p_positive_raw", "answer"),
    *("words", "tokens", "truncated", "latency_ms"),
)
# Names no label may take (in any case): the answer that names no label, and the columns sentiq writes.
RESERVED_LABELS = frozenset({INVALID, *LABELLED_FIELDS, *RUN_FIELDS})


def labelled(
    text_id: str, text: str, prediction: Prediction, latency_ms: float, labels: Sequence[str] = LABELS
) -> dict[str, Any]:
    """A labelled row; for a label set other than the binary one, with each label's probability too."""
    extra = (
        {}
        if tuple(labels) == LABELS
        else {k: v for k, v in output_row(prediction, labels).items() if k.startswith("p_")}
    )
    return {"id": text_id, "text": text, **prediction.row(), **extra, "latency_ms": latency_ms}


def run_fields(labels: Sequence[str] = LABELS) -> tuple[str, ...]:
    """predictions.csv's columns: RUN_FIELDS for the binary labels; for another set, each label's
    probability in place of p_positive and p_positive_raw."""
    if tuple(labels) == LABELS:
        return RUN_FIELDS
    return (*(f for f in RUN_FIELDS if f not in ("p_positive", "p_positive_raw")), *probability_fields(labels))


def run_row(row: dict[str, Any], gold: str, labels: Sequence[str] = LABELS) -> dict[str, Any]:
    """A labelled row as predictions.csv holds it."""
    import pandas as pd

    prob = lambda x: None if x is None or pd.isna(x) else round(float(x), PROBABILITY_DIGITS)  # noqa: E731
    binary = tuple(labels) == LABELS
    probs = {f: prob(row.get(f)) for f in ("p_positive", "p_positive_raw")} if binary else {}
    extra = {} if binary else {f: prob(row.get(f)) for f in probability_fields(labels)}
    return {
        "id": str(row["id"]),
        "gold": gold,
        "predicted": row["label"],
        **probs,
        "answer": row["answer"] or "",
        "words": word_count(row["text"]),
        "tokens": int(row["tokens"]),
        "truncated": int(row["truncated"]),
        "latency_ms": round(float(row["latency_ms"]), 3),
        **extra,
    }
