"""Classification quality (sklearn) and speed summaries. Invalid answers count as errors, never dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sentiq.text import LABELS


@dataclass
class Quality:
    n: int
    accuracy: float  # over all n texts; an invalid answer is a wrong answer
    macro_precision: float
    macro_recall: float
    macro_f1: float
    precision_positive: float
    recall_positive: float
    f1_positive: float
    precision_negative: float
    recall_negative: float
    f1_negative: float
    invalid: int
    coverage: float  # share of texts that got a valid label


@dataclass
class Speed:
    seconds: float  # inference wall time, model loading and warm-up excluded
    words: int
    tokens: int
    words_per_s: float
    tokens_per_s: float
    latency_p50_ms: float  # per text, its batch's time shared among the batch's texts
    latency_p95_ms: float


def quality(gold: Sequence[str], predicted: Sequence[str]) -> Quality:
    """Per-class and macro precision/recall/F1 over the two real labels; 'invalid' predictions lower
    recall of their gold class and accuracy."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(LABELS)
    p, r, f, _ = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(gold, predicted, labels=labels, average="macro", zero_division=0)
    invalid = sum(1 for y in predicted if y not in LABELS)
    n = len(gold)
    return Quality(
        n=n,
        accuracy=float(accuracy_score(gold, predicted)),
        macro_precision=float(mp),
        macro_recall=float(mr),
        macro_f1=float(mf),
        precision_positive=float(p[0]),
        recall_positive=float(r[0]),
        f1_positive=float(f[0]),
        precision_negative=float(p[1]),
        recall_negative=float(r[1]),
        f1_negative=float(f[1]),
        invalid=invalid,
        coverage=(n - invalid) / n if n else 0.0,
    )


def speed(seconds: float, words: int, tokens: int, latencies_ms: Sequence[float]) -> Speed:
    lat = np.asarray(latencies_ms, dtype=float) if len(latencies_ms) else np.zeros(1)
    return Speed(
        seconds=seconds,
        words=words,
        tokens=tokens,
        words_per_s=words / seconds if seconds > 0 else 0.0,
        tokens_per_s=tokens / seconds if seconds > 0 else 0.0,
        latency_p50_ms=float(np.percentile(lat, 50)),
        latency_p95_ms=float(np.percentile(lat, 95)),
    )


def as_row(q: Quality, s: Speed) -> dict[str, float | int]:
    return {**asdict(q), **asdict(s)}


def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's): honest at small n and near 0 or 1."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 1.0
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
