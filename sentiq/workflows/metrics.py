"""Classification quality (sklearn) and speed summaries. Invalid answers count as errors, never dropped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentiq.predictions import is_binary
from sentiq.results import Quality, Speed
from sentiq.text import LABELS


def quality(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS, ordered: bool = False
) -> Quality:
    """Per-label precision/recall/F1 over every label of the set, macro averages over those the sample
    holds (a label no text has has no recall to average: five-point reviews without a 3-star one); 'invalid'
    predictions lower recall of their gold label and accuracy. Ordered labels add the distance measures of
    ratings."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(labels)
    present = [lab for lab in labels if lab in set(gold)]
    held = present or labels
    p, r, f, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(gold, predicted, labels=held, average="macro", zero_division=0)
    invalid = sum(1 for y in predicted if y not in labels)
    n = len(gold)
    per_label = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, lab in enumerate(labels)
    }
    binary = {}
    if is_binary(labels):
        binary = {f"{m}_{lab}": per_label[lab][m] for lab in LABELS for m in ("precision", "recall", "f1")}
    macro = (lambda x: None) if len(present) == 1 else float
    return Quality(
        n=n,
        accuracy=float(accuracy_score(gold, predicted)),
        macro_precision=macro(mp),
        macro_recall=macro(mr),
        macro_f1=macro(mf),
        invalid=invalid,
        coverage=(n - invalid) / n if n else 0.0,
        labels_in_sample=len(present),
        per_label=per_label,
        **binary,
        **(_ordered(gold, predicted, labels) if ordered else {}),
    )


def _ordered(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import cohen_kappa_score

    step = {label: i for i, label in enumerate(labels)}
    pairs = [(step[g], step[p]) for g, p in zip(gold, predicted) if p in step]
    within = sum(abs(g - p) <= 1 for g, p in pairs) / len(gold) if gold else 0.0
    if not pairs:
        return {"within_one": within}
    g, p = np.array(pairs).T
    qwk = cohen_kappa_score(g, p, labels=list(range(len(labels))), weights="quadratic")
    return {"mae": float(np.abs(g - p).mean()), "within_one": float(within), "qwk": float(np.nan_to_num(qwk))}


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


def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's): honest at small n and near 0 or 1."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 1.0
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
