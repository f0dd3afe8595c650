"""How far a run's probabilities can be trusted: calibration (expected calibration error, Brier score,
log loss), discrimination (AUROC, binary sets) and selective prediction (the risk–coverage curve, and
how many texts can be answered at a given accuracy). Computed on the texts that have a probability;
the confidence of a text is the probability of the label it was given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sentiq.predictions import INVALID, UNCERTAIN, LabelSet, is_binary

if TYPE_CHECKING:
    import pandas as pd

ECE_BINS = 15  # equal-width bins of confidence over [0, 1] (Guo et al. 2017)
TARGETS = (0.90, 0.95, 0.99)  # accuracies coverage_at reports the coverage of


@dataclass(frozen=True)
class Scored:
    """The texts a run gave probabilities to: their probabilities (texts, labels, in the set's order),
    the index of the label each was given and of its gold label."""

    probs: np.ndarray
    given: np.ndarray
    gold: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        return self.probs[np.arange(len(self.given)), self.given]

    @property
    def correct(self) -> np.ndarray:
        return self.given == self.gold


def run_probabilities(rows: pd.DataFrame, label_set: LabelSet) -> np.ndarray:
    """(texts, labels) probabilities from predictions.csv's columns (NaN where a text has none): the binary
    set's p_positive and its complement, another set's p_<label>."""
    import pandas as pd

    if not len(rows):
        return np.zeros((0, len(label_set.labels)))
    columns = [
        pd.to_numeric(rows.get(f, pd.Series(index=rows.index)), errors="coerce") for f in label_set.probability_fields
    ]
    kept = np.column_stack([c.to_numpy(dtype=float) for c in columns])
    return np.column_stack([kept[:, 0], 1 - kept[:, 0]]) if label_set.binary else kept


def scored_rows(rows: pd.DataFrame, label_set: LabelSet) -> Scored:
    """The scored texts of a run's predictions (predictions.csv's columns), an 'uncertain' text at the
    label it abstained from."""
    probs = run_probabilities(rows, label_set)
    return scored(
        probs, full_labels(probs, list(rows["predicted"]), label_set.labels), list(rows["gold"]), label_set.labels
    )


def full_labels(probs: np.ndarray, given: Sequence[str], labels: Sequence[str]) -> list[str]:
    """The labels as if the run had not abstained: an 'uncertain' text's most probable label (one with no
    probability stays 'uncertain', counted wrong as an invalid answer is)."""
    return [labels[int(np.argmax(p))] if g == UNCERTAIN and np.isfinite(p).all() else g for p, g in zip(probs, given)]


def selective(gold: Sequence[str], given: Sequence[str]) -> dict[str, float | int | None]:
    """What abstaining left: the texts labelled 'uncertain', the share answered (neither uncertain nor
    invalid) and the accuracy of those answered, with its Wilson 95% interval."""
    from sentiq.workflows.metrics import wilson

    answered = [g == y for g, y in zip(given, gold) if g not in (UNCERTAIN, INVALID)]
    right = sum(answered)
    low, high = wilson(right, len(answered))
    return {
        "uncertain": sum(g == UNCERTAIN for g in given),
        "answered": len(answered) / len(gold) if len(gold) else 0.0,
        "selective_accuracy": right / len(answered) if answered else None,
        "selective_accuracy_interval": [low, high] if answered else None,
    }


def scored(probs: np.ndarray, given: Sequence[str], gold: Sequence[str], labels: Sequence[str]) -> Scored:
    """The rows with a probability for every label, given a label of the set, and a gold label of it."""
    index = {label: i for i, label in enumerate(labels)}
    g = np.array([index.get(x, -1) for x in given])
    y = np.array([index.get(x, -1) for x in gold])
    keep = np.isfinite(probs).all(axis=1) & (g >= 0) & (y >= 0) if len(probs) else np.zeros(0, dtype=bool)
    return Scored(probs[keep], g[keep], y[keep])


def confidence_metrics(s: Scored, labels: Sequence[str]) -> dict[str, float | int | None]:
    """metrics.json's confidence figures; None where there is nothing to compute them on."""
    n = len(s.given)
    out: dict[str, float | int | None] = {"scored": n}
    if n == 0:
        return {**out, **dict.fromkeys(("mean_confidence", "ece", "brier", "log_loss", "auroc", "aurc"))} | {
            _coverage_name(a): None for a in TARGETS
        }
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    order = np.argsort(np.asarray(labels))  # sklearn reads probability columns in sorted label order
    names, gold = np.asarray(labels)[order], np.asarray(labels)[s.gold]
    columns = s.probs[:, order] / s.probs.sum(axis=1, keepdims=True)
    auroc = None
    if is_binary(labels) and len(set(s.gold.tolist())) == 2:
        auroc = float(roc_auc_score(s.gold == 0, s.probs[:, 0]))  # positive is the set's first label
    out |= {
        "mean_confidence": float(s.confidence.mean()),
        "ece": ece(s.confidence, s.correct),
        "brier": float(brier_score_loss(gold, columns, labels=list(names))),
        "log_loss": float(log_loss(gold, columns, labels=list(names))),
        "auroc": auroc,
        "aurc": aurc(s.confidence, s.correct),
    }
    return out | {_coverage_name(a): coverage_at(s.confidence, s.correct, a) for a in TARGETS}


def _coverage_name(accuracy: float) -> str:
    return f"coverage_at_{round(accuracy * 100)}"


def confidence_bins(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Each text's bin of `bins` equal-width bins of confidence: a bin holds (lo, hi], the first also 0."""
    return np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the texts' share-weighted gap between accuracy and mean confidence
    in equal-width bins of confidence (confidence_bins)."""
    which = confidence_bins(confidence, bins)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(confidence))


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The selective risk (error rate of the answered texts) at every coverage k/n, answering the most
    confident texts first; texts of equal confidence are answered together, so within such a group the
    risk is its expectation over their orders."""
    order = np.argsort(-confidence, kind="stable")
    conf, wrong = confidence[order], ~correct[order]
    n = len(conf)
    errors = np.empty(n)
    start = 0
    before = 0.0
    while start < n:  # one group of equal confidence at a time
        end = start + int(np.searchsorted(-conf[start:], -conf[start], side="right"))
        rate = wrong[start:end].mean()
        errors[start:end] = before + rate * np.arange(1, end - start + 1)
        before += wrong[start:end].sum()
        start = end
    k = np.arange(1, n + 1)
    return k / n, errors / k


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk–coverage curve: the mean selective risk over the coverages 1/n … n/n (lower
    is better; a perfect ranking's area is what its errors alone cost)."""
    return float(risk_coverage(confidence, correct)[1].mean())


def coverage_at(confidence: np.ndarray, correct: np.ndarray, accuracy: float) -> float:
    """The largest share of texts that can be answered, most confident first and cut only between
    different confidences, with their accuracy at least `accuracy` (0 when none can)."""
    ends = _group_ends(confidence)
    coverage, risk = risk_coverage(confidence, correct)
    ok = [e for e in ends if 1 - risk[e - 1] >= accuracy - 1e-12]
    return float(coverage[max(ok) - 1]) if ok else 0.0


def _group_ends(confidence: np.ndarray) -> list[int]:
    """How many texts are answered at each cut between different confidences (most confident first)."""
    conf = np.sort(confidence)[::-1]
    return [i + 1 for i in range(len(conf)) if i == len(conf) - 1 or conf[i + 1] != conf[i]]
