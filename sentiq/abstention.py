"""Abstention: a text whose label is less probable than a threshold gets the label 'uncertain' (its
probabilities kept). The threshold is given (--min-confidence), or chosen on a fit's out-of-fold
predictions so that the texts answered are at least as accurate as a target with 95% confidence
(--target-accuracy), as selection with guaranteed risk does (Geifman & El-Yaniv 2017), over a grid of
thresholds fixed in advance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from numbers import Real
from typing import TYPE_CHECKING, Any

from sentiq.errors import OptionError
from sentiq.predictions import INVALID, UNCERTAIN, Prediction

if TYPE_CHECKING:
    import numpy as np

DELTA = 0.05  # the guarantee holds with probability 1 - DELTA
GRID = 50  # thresholds evenly spaced from chance to 0.99 (and four closer to 1)


def check_share(value: Any, option: str) -> float | None:
    """`value` as a probability strictly between 0 and 1 (None stays None); one line otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"{option.lstrip('-').replace('-', '_')} must be a number in (0, 1), not {type(value).__name__}"
        )
    if not (0 < float(value) < 1) or math.isnan(float(value)):
        raise OptionError(f"{option} must be between 0 and 1 (exclusive), not {value}")
    return float(value)


def abstention_checks(
    min_confidence: float | None, target_accuracy: float | None, reads_fit: bool
) -> list[tuple[bool, str]]:
    """What MethodConfig refuses of the two abstention options."""
    return [
        (
            min_confidence is None or target_accuracy is None,
            "give --min-confidence or --target-accuracy, not both: the target chooses the threshold",
        ),
        (
            target_accuracy is None or reads_fit,
            "--target-accuracy chooses a threshold on a fit's held-out predictions: give --fit FIT with "
            "--method probe or --calibrate fitted (or a threshold of your own: --min-confidence)",
        ),
    ]


@dataclass(frozen=True)
class Threshold:
    """The confidence below which a text is 'uncertain', and, when chosen for a target accuracy, what it
    promises: a 95% lower bound on the answered texts' accuracy (`bound`) and the share of the fit's
    held-out texts it answered (`coverage`); beside them, the threshold and coverage the target alone
    would give on those texts without the bound (what the guarantee costs)."""

    confidence: float
    target_accuracy: float | None = None
    bound: float | None = None
    coverage: float | None = None
    observed_confidence: float | None = None
    observed_coverage: float | None = None
    held_out: int | None = None

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def abstained(prediction: Prediction, threshold: float) -> Prediction:
    """'uncertain' when the label's probability is below `threshold` or there is none; an invalid answer
    stays invalid."""
    if prediction.label == INVALID:
        return prediction
    confidence = (prediction.scores or {}).get(prediction.label)
    if confidence is not None and confidence >= threshold:
        return prediction
    return replace(prediction, label=UNCERTAIN)


def accuracy_bound(correct: int, n: int, delta: float = DELTA) -> float:
    """One-sided (1 - delta) lower bound on an accuracy seen as `correct` of `n` (Clopper–Pearson: the
    binomial tail bound SGR uses)."""
    from scipy.stats import beta

    if n == 0:
        return 0.0
    return float(beta.ppf(delta, correct, n - correct + 1)) if correct > 0 else 0.0


def thresholds(n_labels: int) -> list[float]:
    """The thresholds a target may choose from, fixed before any data is seen (so that testing them all
    is a union bound): evenly spaced from chance to 0.99, then ever closer to 1."""
    import numpy as np

    even = np.linspace(1 / n_labels, 0.99, GRID)
    return sorted({*(round(float(t), 6) for t in even), 0.995, 0.999, 0.9995, 0.9999})


def guaranteed(confidence: Sequence[float], correct: Sequence[bool], target: float, n_labels: int) -> Threshold:
    """The lowest of the fixed thresholds at which the held-out texts answered (confidence at least it)
    are at least `target` accurate by a one-sided binomial bound, each threshold tested at DELTA over
    their number (Bonferroni): with probability 1 - DELTA every threshold's bound holds at once. Refused in
    one line, with the best bound a threshold gives, when none reaches the target."""
    import numpy as np

    conf, ok = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    n = len(conf)
    if n == 0:
        raise OptionError("--target-accuracy: the fit holds no held-out predictions to choose a threshold on")
    grid = thresholds(n_labels)
    delta = DELTA / len(grid)
    tested = []
    for t in grid:
        answered = conf >= t
        tested.append((t, accuracy_bound(int(ok[answered].sum()), int(answered.sum()), delta), answered.mean()))
    passing = [x for x in tested if x[1] >= target]
    if not passing:
        t, bound, coverage = max(tested, key=lambda x: x[1])
        raise OptionError(
            f"--target-accuracy {target}: no threshold promises it on the fit's {n} held-out texts (the best is "
            f"{bound:.3f} with 95% confidence, answering {coverage:.0%} at confidence {t:g}); ask for less, or "
            "fit on more texts"
        )
    t, bound, coverage = passing[0]
    observed = _observed(conf, ok, target)
    return Threshold(
        confidence=t,
        target_accuracy=target,
        bound=bound,
        coverage=float(coverage),
        observed_confidence=observed[0] if observed else None,
        observed_coverage=observed[1] if observed else None,
        held_out=n,
    )


def _observed(conf: np.ndarray, ok: np.ndarray, target: float) -> tuple[float, float] | None:
    """The lowest threshold (a held-out confidence) whose answered texts' observed accuracy reaches
    `target`, and its coverage: what the target alone would take, without the bound."""
    import numpy as np

    for c in np.unique(conf):
        answered = conf >= c
        if ok[answered].mean() >= target:
            return float(c), float(answered.mean())
    return None
