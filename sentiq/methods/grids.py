"""The tuning searches' own entry points into a classifier: one scoring pass read two ways (label
scores and the first answer token), and several decoding settings from one encoded prompt."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from sentiq.core.batching import Done, gathered
from sentiq.methods.binding import answer_firsts, deciding_tokens
from sentiq.methods.calibration import log_softmax
from sentiq.methods.generation import decoding, vote
from sentiq.methods.runner import MethodRunner, voted
from sentiq.methods.texts import prepare
from sentiq.predictions import Prediction
from sentiq.settings import MethodConfig

Advance = Callable[[int], None]  # texts done, for a progress bar


def scores_and_answers(
    runner: MethodRunner, texts: Sequence[str], advance: Advance = lambda n: None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """For tune-prompt, from one pass of the first prompt: label log-probabilities normalised over the
    labels (as label_logprobs), the raw log-probabilities of answer_firsts' tokens as the first answer
    token (columns 0 and 1: the label words' own), and the label index each of those names."""
    b = runner.bound[0]
    ids, names = answer_firsts(b, runner.engine)
    bodies = b.bodies(runner.engine, texts)
    batches = _advancing(runner.engine.score_batches(b.prefix, bodies, b.label_ids, firsts=ids), advance)
    raw = gathered(batches, (len(texts), len(b.label_ids) + len(ids)))
    n = len(b.label_ids)
    return log_softmax(raw[:, :n]), raw[:, n:], names


def predict_grid(
    runner: MethodRunner, texts: Sequence[str], configs: Sequence[MethodConfig], advance: Advance = lambda n: None
) -> list[list[Prediction]]:
    """Predictions for several decoding settings of the first prompt, encoded once."""
    b = runner.bound[0]
    fitted = [t for t, _ in prepare(runner.engine, texts, runner.config.max_tokens)]
    bodies = b.bodies(runner.engine, fitted)
    watch, names = deciding_tokens(b, runner.engine)
    n = len(runner.labels)
    grid: list[list[Prediction | None]] = [[None] * len(texts) for _ in configs]
    samplings = [decoding(c) for c in configs]
    for done in runner.engine.generate_batches(b.prefix, bodies, samplings, runner.seeds(fitted), None, watch):
        for config, per_config, got in zip(configs, grid, done.result):
            for i, per_text in zip(done.indices, got):
                answers = [voted(b, a, names, n) for a in per_text]
                per_config[i] = vote(answers, runner.labels, config.method == "sampling")
        advance(len(done.indices))
    return [[p for p in per_config if p is not None] for per_config in grid]


def _advancing(batches: Iterator[Done], advance: Advance) -> Iterator[Done]:
    """The batches, the progress bar advanced by each as it finishes."""
    for done in batches:
        advance(len(done.indices))
        yield done
