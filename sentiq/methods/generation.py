"""How generated answers become a label: decoding settings made explicit, and the vote over answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from sentiq.core.decoding import Sampling
from sentiq.predictions import INVALID, Prediction
from sentiq.settings import MethodConfig
from sentiq.text import LABELS

Voted = tuple[str, str | None, "np.ndarray | None"]  # an answer, the label it names, its label probabilities


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


VOTE_PRIOR = 0.5  # pseudo-votes each label starts with when votes are shares (Jeffreys): none is exactly 0


def decided_probs(decided: np.ndarray | None, names: Sequence[int], n_labels: int) -> np.ndarray | None:
    """Each label's probability where an answer committed to a label: at that step (decode), the
    probability of the label's likeliest spelling among the watched tokens, normalised over the labels
    (so a greedy answer's label is the most probable one). None when the answer never chose a token that
    names a label."""
    if decided is None:
        return None
    p = np.exp(decided - np.max(decided))
    per_label = np.zeros(n_labels)
    np.maximum.at(per_label, np.asarray(names), p)
    return per_label / per_label.sum()


def vote(answers: Sequence[Voted], labels: Sequence[str] = LABELS, sampled: bool = False) -> Prediction:
    """Majority vote over (answer, parsed label, label probabilities where it committed) triples. Invalid
    answers do not vote; a tie goes to the earliest valid answer; no valid answer at all is invalid.
    The probabilities: several sampled answers' vote shares, each label given VOTE_PRIOR pseudo-votes so
    that none is exactly 0; otherwise (one answer per prompt) the mean of the answers' own probabilities
    where they committed (None when no answer committed to a label by a token)."""
    valid = [p for _, p, _ in answers if p is not None]
    joined = " | ".join(a for a, _, _ in answers)
    if not valid:
        return Prediction(label=INVALID, p_positive=None, answer=joined)
    counts = Counter(valid)
    best = max(counts.values())
    label = next(p for p in valid if counts[p] == best)
    if sampled and len(answers) > 1:
        shares = [(counts[lab] + VOTE_PRIOR) / (len(valid) + VOTE_PRIOR * len(labels)) for lab in labels]
        return Prediction.of(label, shares, labels, answer=joined)
    members = [probs for _, p, probs in answers if p is not None and probs is not None]
    if not members:
        return Prediction(label=label, p_positive=None, answer=joined)
    return Prediction.of(label, np.mean(members, axis=0), labels, answer=joined)
