"""Label priors for calibration: the inputs they are estimated on, and their record in a run. A prior is
the mean label probability over some inputs; calibration divides it out (renormalised)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentiq.methods.prompts import CONTENT_FREE
from sentiq.predictions import Prediction, top_label
from sentiq.results import CalibrationRecord
from sentiq.text import LABELS, plural

DOMAIN_INPUTS = 20  # random in-domain texts for domain-context calibration (as Fei et al. 2023)
DOMAIN_MAX_WORDS = 256  # their length: the texts' mean, at most this


def calibration_record(mode: str, prior: np.ndarray, where: str, labels: Sequence[str] = LABELS) -> CalibrationRecord:
    """How a run was calibrated: one prior, or one per prompt (generation methods calibrate each
    prompt's first answer token)."""
    as_dict = lambda row: dict(zip(labels, (float(p) for p in row)))  # noqa: E731
    kept = as_dict(prior) if prior.ndim == 1 else [as_dict(row) for row in prior]
    return CalibrationRecord(mode, kept, where)


def prior_from_record(record: CalibrationRecord) -> np.ndarray:
    """The prior a calibration record holds, as the runner takes it."""
    kept = record.prior
    rows = kept if isinstance(kept, list) else [kept]
    prior = np.array([list(row.values()) for row in rows])  # in the label set's order, as recorded
    return prior if isinstance(kept, list) else prior[0]


def domain_inputs(texts: Sequence[str], seed: int) -> list[str]:
    """Content-free texts made of random words of the texts themselves, as long as they are on average
    (Fei et al. 2023, "Mitigating Label Biases for In-context Learning"): they carry the domain's
    vocabulary and length but no sentiment of any one text. No labels are used."""
    words = [w for t in texts for w in t.split()]
    if not words:
        return list(CONTENT_FREE)
    length = max(1, min(DOMAIN_MAX_WORDS, round(len(words) / max(1, len(texts)))))
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=length)) for _ in range(DOMAIN_INPUTS)]


def calibrated_predictions(logp: np.ndarray, prior: np.ndarray | None, labels: Sequence[str]) -> list[Prediction]:
    """Predictions from label log-probabilities (texts, labels), the prior divided out when there is
    one (then the probabilities before it are kept beside them). An exact tie at the top is invalid."""
    if prior is None:
        return fitted_predictions(logp, None, labels)
    return fitted_predictions(logp - np.log(prior), logp, labels)


def fitted_predictions(logp: np.ndarray, raw: np.ndarray | None, labels: Sequence[str]) -> list[Prediction]:
    """Predictions from label log-probabilities (texts, labels) as calibrated or fitted, with `raw`, those
    before calibration, kept beside them. An exact tie at the top is invalid."""
    probs = softmax(logp)
    before = softmax(raw) if raw is not None else [None] * len(probs)
    predictions = []
    for p, r in zip(probs, before):
        label, tie = top_label(p, labels)
        predictions.append(Prediction.of(label, p, labels, r, answer=tie))
    return predictions


def log_softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(scores: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(scores))


def prior_inputs(mode: str, texts: Sequence[str], seed: int) -> tuple[Sequence[str], str]:
    """The inputs a `mode` prior is the mean label probability of, and how to say so."""
    if mode == "contextual":
        return CONTENT_FREE, "content-free inputs"
    if mode == "domain":
        inputs = domain_inputs(texts, seed)
        return inputs, f"{len(inputs)} random in-domain word sequences"
    return texts, f"the first {plural(len(texts), 'text')} classified" if len(
        texts
    ) > 1 else "the first text classified"
