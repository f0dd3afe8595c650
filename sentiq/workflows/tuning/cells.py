"""A prompt search's grid cells, each scored from the one scoring pass: the label log-probabilities of
its prompts averaged (an ensemble), an ending mixed in and a prior divided out, as the methods would; and
the first answer token a generating method would give, read off the same pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from sentiq.predictions import INVALID

Gold = tuple[np.ndarray, tuple[str, ...]]  # each text's label index, and the labels


def answered_labels(calibrate: str, tail: int, answers: dict[str, Any]) -> np.ndarray:
    """Which label (its index) a prompt's generation would answer for each text, read off its scoring
    pass (read_views): the greedy first answer token among those that start a label word in any casing
    (an answer that starts elsewhere is not modelled)."""
    first = first_answer_step(calibrate, tail, answers)
    return np.array(answers["names"])[first.argmax(dim=1).numpy()]


def first_answer_step(calibrate: str, tail: int, answers: dict[str, Any]) -> Any:
    """The first decoding step's log-probabilities of the answer tokens, the ending mixed in and the
    prior divided out exactly as decoding does (the same functions, on those columns)."""
    import torch

    from sentiq.core.decoding import divide_prior, mix_first
    from sentiq.methods.calibration import log_softmax, softmax

    own = list(range(max(answers["names"]) + 1))  # the label words' own first tokens lead the columns
    views = ("", "@tail") if tail else ("",)
    labelled = lambda kind: [log_softmax(answers[kind + v][:, own]) for v in views]  # noqa: E731
    first = torch.from_numpy(answers["texts"])
    if tail:
        first = mix_first(first, own, torch.from_numpy(labelled("texts")[1]))
    if calibrate != "none":
        prior = softmax(np.mean(labelled("texts" if calibrate == "batch" else calibrate), axis=0)).mean(axis=0)
        first = divide_prior(first, tuple(zip(own, np.log(prior).tolist())))
    return first


def answer_cell(name: str, calibrate: str, tail: int, answers: dict[str, Any], gold: Gold) -> dict[str, Any]:
    return _row(name, calibrate, tail, answered_labels(calibrate, tail, answers), gold)


def score_cell(name: str, members: list[str], calibrate: str, tail: int, scored: dict, gold: Gold) -> dict[str, Any]:
    """One grid cell: the members' label log-probabilities averaged (as an ensemble does, over each
    input and, with `tail`, its ending too), the prior of `calibrate` divided out, scored against the
    gold labels."""
    from sentiq.methods.calibration import log_softmax, softmax

    views = ("", "@tail") if tail else ("",)
    mean = lambda kind: np.mean([log_softmax(scored[m][kind + v]) for m in members for v in views], axis=0)  # noqa: E731
    logp = mean("texts")
    if calibrate != "none":
        prior = softmax(logp if calibrate == "batch" else mean(calibrate)).mean(axis=0)
        logp = logp - np.log(prior)
    return _row(name, calibrate, tail, _top(logp), gold)


def _top(logp: np.ndarray) -> np.ndarray:
    """Each row's top label (its index), or -1 where several labels share the top exactly: invalid, as
    loglik answers a tie."""
    tied = (logp == logp.max(axis=1, keepdims=True)).sum(axis=1) > 1
    return np.where(tied, -1, logp.argmax(axis=1))


def _row(name: str, calibrate: str, tail: int, answered: np.ndarray, gold: Gold) -> dict[str, Any]:
    from sentiq.workflows.metrics import quality

    indices, labels = gold
    q = quality([labels[g] for g in indices], [labels[a] if a >= 0 else INVALID for a in answered], labels)
    shares = {f"share_{lab}": float((answered == i).mean()) for i, lab in enumerate(labels)}
    return dict(
        prompt=name,
        calibrate=calibrate,
        tail=tail,
        accuracy=q.accuracy,
        macro_recall=q.macro_recall,
        macro_f1=q.macro_f1,
        **shares,
    )
