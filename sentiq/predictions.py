"""One prediction, and the one schema its fields take wherever they go: the library's Result and
classify_frame's columns, classify's output, a run's predictions.csv, the rows a backend hands back (Ray's
columns among them) and the service's JSON. Each of those is a Surface; `prediction_fields` renders a
prediction for any of them, and the binary label set's own columns (p_positive, p_positive_raw) are
decided here alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sentiq.text import LABELS, word_count

PROBABILITY_DIGITS = 6  # what a float32 score holds, and what files hold
INVALID = "invalid"  # a generated answer that names no label, or several
UNCERTAIN = "uncertain"  # a label less probable than the abstention threshold (its probabilities kept)

# Where a prediction goes: the library's Result ("result"; classify_frame takes "output"'s columns), an
# output file of classify ("output"), a backend's labelled row ("labelled": Ray's columns too), and the
# service's JSON ("service"). A run's predictions.csv is made from labelled rows (run_row).
Surface = Literal["result", "output", "labelled", "service"]
# Surfaces whose rows go to files (a labelled row becomes predictions.csv's, or Ray's output): probabilities
# to PROBABILITY_DIGITS; the in-memory ones keep the float they were computed in.
ROUNDED: frozenset[str] = frozenset({"output", "labelled"})


def is_binary(labels: Sequence[str]) -> bool:
    """The positive/negative label set, whose surfaces keep the columns it has always had."""
    return tuple(labels) == LABELS


@dataclass(frozen=True)
class LabelSet:
    """The labels a prompt scores, in the order of its scores, and what that set's predictions look like
    on every surface: its probability fields, and whether the labels run from low to high (ratings)."""

    labels: tuple[str, ...]
    ordered: bool = False
    exit_fields: tuple[str, ...] = ()  # staged predictions: where each left ("exit"; "exit_model" in a cascade)

    @property
    def binary(self) -> bool:
        return is_binary(self.labels)

    @property
    def probability_fields(self) -> tuple[str, ...]:
        """p_positive for the binary labels (as ever), p_<label> for every label of another set."""
        return ("p_positive",) if self.binary else tuple(f"p_{label}" for label in self.labels)

    @property
    def raw_fields(self) -> tuple[str, ...]:
        """The probabilities before calibration that the labelled rows keep: positive's, for the binary set."""
        return ("p_positive_raw",) if self.binary else ()

    def surface_fields(self, surface: Surface, answers: bool = True) -> tuple[str, ...]:
        """A surface's prediction fields, in order; `answers`: the method generates (a scoring method's
        outputs leave the answer out)."""
        answer = ("answer",) if answers else ()
        exit_ = self.exit_fields
        return {
            "result": ("label", "p_positive", "answer", "truncated", "scores", *exit_),
            "output": ("label", *self.probability_fields, *answer, *exit_),
            "labelled": ("label", *self.probability_fields, *self.raw_fields, "answer", "tokens", "truncated", *exit_),
            "service": ("label", "scores", "answer", "truncated", *exit_),
        }[surface]

    def run_fields(self) -> tuple[str, ...]:
        """predictions.csv's columns: RUN_FIELDS for the binary labels; for another set, each label's
        probability in place of p_positive and p_positive_raw."""
        exit_ = self.exit_fields
        if self.binary:
            return (*RUN_FIELDS, *exit_)
        return (*(f for f in RUN_FIELDS if f not in ("p_positive", "p_positive_raw")), *self.probability_fields, *exit_)


@dataclass
class Prediction:
    label: str  # a label name, or 'invalid'
    p_positive: float | None  # scoring: softmax over label scores; several answers: share of positive votes
    p_positive_raw: float | None = None  # before calibration, when calibrated
    answer: str | None = None  # generated text (answers joined by ' | ' when there are several)
    tokens: int = 0  # prompt tokens specific to this text (the whole prompt's when encoded whole), all prompts
    truncated: bool = False
    scores: dict[str, float] | None = None  # every label's probability (as p_positive is positive's)
    exit: int | None = None  # early exits: the layer whose probe labelled it
    exit_model: str | None = None  # a cascade across models: the model of that layer

    @classmethod
    def of(
        cls, label: str, probs: Sequence[float], labels: Sequence[str], raw: Sequence[float] | None = None, **more: Any
    ) -> Prediction:
        """A prediction with every label's probability (and, calibrated, the one before); p_positive is
        set for the binary labels only."""
        scores = dict(zip(labels, map(float, probs)))
        before = dict(zip(labels, map(float, raw))) if raw is not None else {}
        positive = (scores["positive"], before.get("positive")) if is_binary(labels) else (None, None)
        return cls(label, *positive, scores=scores, **more)


def prediction_fields(
    prediction: Prediction, label_set: LabelSet, surface: Surface, answers: bool = True
) -> dict[str, Any]:
    """The prediction's fields on `surface` (LabelSet.surface_fields), its probabilities rounded where
    the surface is a file: the one rendering of a prediction."""
    digits = PROBABILITY_DIGITS if surface in ROUNDED else None
    scores = prediction.scores or {}
    if label_set.binary:
        flat = {"p_positive": prediction.p_positive, "p_positive_raw": prediction.p_positive_raw}
    else:
        flat = {f"p_{label}": scores.get(label) for label in label_set.labels}
    if surface == "result":  # a Result's p_positive is the binary set's alone (a three-way's is in scores)
        flat = {"p_positive": prediction.p_positive}
    every = {
        "label": prediction.label,
        **flat,
        "scores": {k: _rounded(v, digits) for k, v in scores.items()} if prediction.scores is not None else None,
        "answer": prediction.answer,
        "tokens": prediction.tokens,
        "truncated": prediction.truncated,
        "exit": prediction.exit,
        "exit_model": prediction.exit_model,
    }
    fields = label_set.surface_fields(surface, answers)
    return {f: _rounded(every[f], digits) if f.startswith("p_") else every[f] for f in fields}


def _rounded(p: float | None, digits: int | None) -> float | None:
    if p is None or digits is None:
        return p
    return round(float(p), digits)


def exit_name(layer: Any, model: Any = None) -> str:
    """Where a staged prediction left, as summaries key it: the layer ('12'), and the model in a cascade
    across models ('qwen2.5-1.5b-instruct:28')."""
    return f"{model}:{int(layer)}" if isinstance(model, str) and model else str(int(layer))


def top_label(probs: Sequence[float], labels: Sequence[str]) -> tuple[str, str | None]:
    """The most probable label, and None; when several labels share the top probability exactly, no
    label wins by its position: INVALID, and an answer naming the tied labels."""
    best = max(probs)
    tied = [label for label, p in zip(labels, probs) if p == best]
    if len(tied) == 1:
        return tied[0], None
    return INVALID, f"tie: {' = '.join(tied)}"


def labelled(text_id: str, text: str, prediction: Prediction, latency_ms: float, label_set: LabelSet) -> dict[str, Any]:
    """A backend's labelled row: the text's id and text, the prediction, its share of the batch's time."""
    return {
        "id": text_id,
        "text": text,
        **prediction_fields(prediction, label_set, "labelled"),
        "latency_ms": latency_ms,
    }


# The labelled row's fields for the binary set (another set has p_<label> in place of the two p_ fields).
LABELLED_FIELDS = ("id", "text", *LabelSet(LABELS).surface_fields("labelled"), "latency_ms")
RUN_FIELDS = (  # a run's predictions.csv, binary labels
    *("id", "gold", "predicted", "p_positive", "p_positive_raw", "answer"),
    *("words", "tokens", "truncated", "latency_ms"),
)
# Names no label may take (in any case): the answer that names no label, the abstention, and the columns
# sentiq writes.
RESERVED_LABELS = frozenset({INVALID, UNCERTAIN, *LABELLED_FIELDS, *RUN_FIELDS, "exit", "exit_model"})


def run_row(row: Mapping[str, Any], gold: str, label_set: LabelSet) -> dict[str, Any]:
    """A labelled row as predictions.csv holds it: probabilities to PROBABILITY_DIGITS."""
    import pandas as pd

    prob = lambda x: None if x is None or pd.isna(x) else round(float(x), PROBABILITY_DIGITS)  # noqa: E731
    return {
        "id": str(row["id"]),
        "gold": gold,
        "predicted": row["label"],
        **{f: prob(row.get(f)) for f in (*label_set.probability_fields, *label_set.raw_fields)},
        "answer": row["answer"] or "",
        "words": word_count(row["text"]),
        "tokens": int(row["tokens"]),
        "truncated": int(row["truncated"]),
        "latency_ms": round(float(row["latency_ms"]), 3),
        **{f: int(row[f]) if f == "exit" else row[f] or "" for f in label_set.exit_fields},
    }
