"""Early exits: probes at a few layers before a fit's last one, each with a confidence threshold, and
optionally a larger model's probe after it (a cascade across models). A text leaves at the first exit
whose probe is more confident than its threshold (the last stage takes the rest), so an easy text pays
for the layers up to its exit only. The thresholds are chosen on the fitted texts' out-of-fold
predictions: the least computation per text they allow while the cascade's accuracy stays within
`max_loss` of the last stage's probe alone."""

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
class Then:
    """A second model after a fit's own: the texts whose probe at the fit's last layer is no more
    confident than `threshold` go on to this model's probe at `layer`."""

    model: dict  # the card's record of it: source, kind, label, revision, weights_digest, dtype
    layer: int
    probe: Linear
    threshold: float

    @property
    def label(self) -> str:
        return str(self.model["label"])


@dataclass(frozen=True)
class Chosen:
    """Thresholds chosen for every stage but the last, and what they gave on the held-out predictions
    they were chosen on: each stage's share of the texts, the cascade's accuracy and macro recall beside
    the last stage's, and the mean cost per text (in the units of `costs`)."""

    thresholds: tuple[float, ...]
    shares: tuple[float, ...]
    accuracy: float
    last_accuracy: float
    mean_cost: float
    macro_recall: float
    last_macro_recall: float


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


def choose_thresholds(probs: Sequence[np.ndarray], gold: np.ndarray, costs: Sequence[float], max_loss: float) -> Chosen:
    """Thresholds for every stage but the last that cost the least per text (mean over the texts; a
    stage's cost is what a text leaving there has run: its layers) while the cascade's accuracy and its
    macro recall on these held-out predictions are each at least the last stage's less `max_loss` (so
    that leaving early costs no label more than the rest): coordinate descent from no early exit at all
    (always allowed), each stage in turn taking the candidate threshold that costs least, until none
    moves."""
    right = np.stack([p.argmax(axis=1) == gold for p in probs])  # (stages, texts)
    confidences = [p.max(axis=1) for p in probs]
    cost = np.asarray(costs, dtype=float)
    counts = np.bincount(gold)
    held = counts > 0
    macro = lambda r: float((np.bincount(gold, weights=r, minlength=len(counts))[held] / counts[held]).mean())  # noqa: E731
    floors = right[-1].mean() - max_loss - 1e-12, macro(right[-1]) - max_loss - 1e-12

    def judged(thresholds: list[float]) -> tuple[float, float, float]:
        where = routed(confidences, thresholds)
        r = right[where, np.arange(len(where))]
        return float(cost[where].mean()), float(r.mean()), macro(r)

    thresholds = [1.0] * (len(probs) - 1)
    best = judged(thresholds)
    for _ in range(ROUNDS):
        moved = False
        for j in range(len(thresholds)):
            for t in _candidates(confidences[j]):
                tried = judged([*thresholds[:j], t, *thresholds[j + 1 :]])
                allowed = tried[1] >= floors[0] and tried[2] >= floors[1]
                if allowed and (tried[0], -tried[1]) < (best[0], -best[1]):
                    thresholds[j], best, moved = t, tried, True
        if not moved:
            break
    where = routed(confidences, thresholds)
    shares = np.bincount(where, minlength=len(probs)) / len(where)
    last = float(right[-1].mean()), macro(right[-1])
    return Chosen(tuple(thresholds), tuple(map(float, shares)), best[1], last[0], best[0], best[2], last[1])


def _candidates(confidence: np.ndarray) -> list[float]:
    """Thresholds worth trying at an exit: just below each of (at most CANDIDATES quantiles of) its
    confidences, so that each lets out one more group of texts, and 1.0 (none leaves)."""
    cuts = np.unique(np.quantile(confidence, np.linspace(0, 1, CANDIDATES))) if len(confidence) else []
    return [float(np.nextafter(c, 0)) for c in cuts] + [1.0]
