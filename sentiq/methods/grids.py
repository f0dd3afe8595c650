"""The tuning searches' own entry points into a classifier: one scoring pass read two ways (label
scores and the first answer token), and several decoding settings from one encoded prompt."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sentiq.methods.binding import answer_firsts
from sentiq.methods.calibration import log_softmax
from sentiq.methods.classifier import Classifier
from sentiq.methods.generation import decoding, vote
from sentiq.methods.texts import prepare
from sentiq.predictions import Prediction
from sentiq.settings import MethodConfig


def scores_and_answers(
    clf: Classifier, texts: Sequence[str], on_batch: Callable | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """For tune-prompt, from one pass of the first prompt: label log-probabilities normalised over the
    labels (as label_logprobs), the raw log-probabilities of answer_firsts' tokens as the first answer
    token (columns 0 and 1: the label words' own), and the label index each of those names."""
    b = clf.bound[0]
    ids, names = answer_firsts(b, clf.engine)
    bodies = b.bodies(clf.engine, texts)
    raw = clf.engine.score(b.prefix, bodies, b.label_ids, on_batch=on_batch, firsts=ids)
    n = len(b.label_ids)
    return log_softmax(raw[:, :n]), raw[:, n:], names


def predict_grid(
    clf: Classifier, texts: Sequence[str], configs: Sequence[MethodConfig], on_batch: Callable[[list[int]], None]
) -> list[list[Prediction]]:
    """Predictions for several decoding settings of the first prompt, encoded once."""
    b = clf.bound[0]
    fitted = [t for t, _ in prepare(clf.engine, texts, clf.config.max_tokens)]
    bodies = b.bodies(clf.engine, fitted)
    got = clf.engine.generate(
        b.prefix, bodies, [decoding(c) for c in configs], clf.seeds(fitted), lambda idx, _, s: on_batch(idx)
    )
    votes = lambda per_text: vote([(a, b.prompt.parse(a)) for a in per_text], clf.labels)  # noqa: E731
    return [[votes(per_text) for per_text in per_config] for per_config in got]
