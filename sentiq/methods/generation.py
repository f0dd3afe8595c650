"""How generated answers become a label: decoding settings made explicit, and the vote over answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sentiq.core.decoding import Sampling
from sentiq.predictions import INVALID, Prediction
from sentiq.settings import MethodConfig
from sentiq.text import LABELS


def decoding(cfg: MethodConfig, first_prior: tuple[tuple[int, float], ...] = ()) -> Sampling:
    """Decoding settings, all explicit: greedy unless the method is 'sampling'."""
    sampling = cfg.method == "sampling"
    return Sampling(
        first_prior=first_prior,
        do_sample=sampling,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        num_samples=cfg.samples if sampling else 1,
    )


def vote(answers: Sequence[tuple[str, str | None]], labels: Sequence[str] = LABELS) -> Prediction:
    """Majority vote over (answer, parsed label) pairs. Invalid answers do not vote; a tie goes to the
    earliest valid answer; no valid answer at all is invalid. With several answers each label's share of
    the valid votes is its probability (one answer is no probability)."""
    valid = [p for _, p in answers if p is not None]
    joined = " | ".join(a for a, _ in answers)
    if not valid:
        return Prediction(label=INVALID, p_positive=None, answer=joined)
    counts = Counter(valid)
    best = max(counts.values())
    label = next(p for p in valid if counts[p] == best)
    if len(answers) == 1:
        return Prediction(label=label, p_positive=None, answer=joined)
    return Prediction.of(label, [counts[lab] / len(valid) for lab in labels], labels, answer=joined)
