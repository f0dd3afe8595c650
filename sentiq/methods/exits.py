"""Early exits: probes at a few layers before a fit's last one, each with a confidence threshold. A text
leaves at the first exit whose probe is more confident than its threshold (the last exit takes the
rest), so an easy text pays for the layers up to its exit only. The thresholds are chosen on the fitted
texts' out-of-fold predictions: as few layers per text as they allow while the cascade's accuracy stays
within `max_loss` of the last layer's probe alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentiq.methods.fitted import Linear

CANDIDATES = 200  # thresholds tried per exit: quantiles of its held-out confidences
ROUNDS = 20  # passes of coordinate descent over the exits, at most


@dataclass(frozen=True)
class Exit:
    """A probe at `layer`, and the confidence above which a text leaves there (1.0: none leaves)."""

    layer: int
    probe: Linear
    threshold: float


@dataclass(frozen=True)
class Chosen:
    """Thresholds chosen for the early exits (the last exit has none), and what they gave on the held-out
    predictions they were chosen on: each exit's share of the texts, the cascade's accuracy beside the
    last layer's, and the mean layers run per text."""

    thresholds: tuple[float, ...]
    shares: tuple[float, ...]
    accuracy: float
    last_accuracy: float
    mean_layers: float


def routed(confidences: Sequence[np.ndarray], thresholds: Sequence[float]) -> np.ndarray:
    """The exit each text leaves at: the first whose confidence (top probability) is above its threshold,
    else the last. `confidences`: one array (texts,) per exit; `thresholds`: one per exit but the last."""
    where = np.full(len(confidences[-1]), len(confidences) - 1)
    for j in reversed(range(len(thresholds))):
        where[confidences[j] > thresholds[j]] = j
    return where


def cascaded(probs: Sequence[np.ndarray], thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Each text's exit and its probabilities there: what early-exit inference gives from per-exit
    probabilities (texts, labels)."""
    where = routed([p.max(axis=1) for p in probs], thresholds)
    stacked = np.stack(probs)  # (exits, texts, labels)
    return where, stacked[where, np.arange(stacked.shape[1])]


def choose_thresholds(probs: Sequence[np.ndarray], gold: np.ndarray, layers: Sequence[int], max_loss: float) -> Chosen:
    """Thresholds for every exit but the last that run the fewest layers per text (mean over the texts)
    while the cascade's accuracy on these held-out predictions is at least the last exit's less
    `max_loss`: coordinate descent from no early exit at all (always allowed), each exit in turn taking
    the candidate threshold that runs fewest layers, until none moves."""
    right = np.stack([p.argmax(axis=1) == gold for p in probs])  # (exits, texts)
    confidences = [p.max(axis=1) for p in probs]
    cost = np.asarray(layers, dtype=float)
    floor = right[-1].mean() - max_loss - 1e-12

    def judged(thresholds: list[float]) -> tuple[float, float]:
        where = routed(confidences, thresholds)
        return float(cost[where].mean()), float(right[where, np.arange(len(where))].mean())

    thresholds = [1.0] * (len(probs) - 1)
    best = judged(thresholds)
    for _ in range(ROUNDS):
        moved = False
        for j in range(len(thresholds)):
            for t in _candidates(confidences[j]):
                tried = judged([*thresholds[:j], t, *thresholds[j + 1 :]])
                if tried[1] >= floor and (tried[0], -tried[1]) < (best[0], -best[1]):
                    thresholds[j], best, moved = t, tried, True
        if not moved:
            break
    where = routed(confidences, thresholds)
    shares = np.bincount(where, minlength=len(probs)) / len(where)
    return Chosen(tuple(thresholds), tuple(map(float, shares)), best[1], float(right[-1].mean()), best[0])


def _candidates(confidence: np.ndarray) -> list[float]:
    """Thresholds worth trying at an exit: just below each of (at most CANDIDATES quantiles of) its
    confidences, so that each lets out one more group of texts, and 1.0 (none leaves)."""
    cuts = np.unique(np.quantile(confidence, np.linspace(0, 1, CANDIDATES))) if len(confidence) else []
    return [float(np.nextafter(c, 0)) for c in cuts] + [1.0]
