"""Abstention: a text whose label is less probable than a threshold gets the label 'uncertain' (its
probabilities kept). The threshold is given (--min-confidence), or chosen on a fit's out-of-fold
predictions so that the texts answered are at least as accurate as a target with 95% confidence
(--target-accuracy): selection with guaranteed risk (Geifman & El-Yaniv 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from numbers import Real
from typing import Any

from sentiq.errors import OptionError
from sentiq.predictions import INVALID, UNCERTAIN, Prediction

DELTA = 0.05  # the guarantee holds with probability 1 - DELTA


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


def guaranteed(confidence: Sequence[float], correct: Sequence[bool], target: float) -> Threshold:
    """SGR's threshold for `target` on held-out (confidence, correct) pairs: a binary search over the
    sorted confidences, each of its ceil(log2 n) tests at delta / ceil(log2 n), keeping the lowest
    threshold whose bound reaches the target. Refused in one line, with the best bound any threshold
    gives, when none reaches it."""
    pairs = sorted(zip(confidence, correct))
    n = len(pairs)
    if n == 0:
        raise OptionError("--target-accuracy: the fit holds no held-out predictions to choose a threshold on")
    steps = max(1, math.ceil(math.log2(n)))
    delta = DELTA / steps
    answered = lambda z: [ok for c, ok in pairs if c >= pairs[z][0]]  # noqa: E731
    low, high, best = 0, n - 1, None
    for _ in range(steps):  # z: the index, in ascending confidence, of the threshold tried
        z = (low + high + 1) // 2
        kept = answered(z)
        bound = accuracy_bound(sum(kept), len(kept), delta)
        if bound >= target:
            best, high = (z, bound, len(kept)), z
        else:
            low = z
    observed = _observed(pairs, target)
    if best is None:
        top = max(accuracy_bound(sum(answered(z)), len(answered(z)), delta) for z in range(n))
        raise OptionError(
            f"--target-accuracy {target}: no threshold promises it on the fit's {n} held-out texts (the best "
            f"95% bound any threshold gives is {top:.3f}); ask for less, or fit on more texts"
        )
    z, bound, kept_n = best
    return Threshold(
        confidence=float(pairs[z][0]),
        target_accuracy=target,
        bound=bound,
        coverage=kept_n / n,
        observed_confidence=observed[0] if observed else None,
        observed_coverage=observed[1] if observed else None,
        held_out=n,
    )


def _observed(pairs: list[tuple[float, bool]], target: float) -> tuple[float, float] | None:
    """The lowest threshold whose answered texts' observed accuracy reaches `target`, and its coverage."""
    for c in sorted({c for c, _ in pairs}):
        kept = [ok for x, ok in pairs if x >= c]
        if sum(kept) / len(kept) >= target:
            return float(c), len(kept) / len(pairs)
    return None
