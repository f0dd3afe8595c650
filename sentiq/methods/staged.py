"""The probe of a fit with stages: each batch runs span by span through the model, texts leaving at the
first early exit whose probe is sure of them, and, in a cascade across models, the texts the first
model's last probe is unsure of handed to the second model's probe."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from sentiq.core.batching import Done
from sentiq.core.engine import Engine, load_engine
from sentiq.errors import OptionError
from sentiq.io.fits import model_digest
from sentiq.methods.binding import Bound
from sentiq.methods.calibration import fitted_predictions
from sentiq.methods.exits import Then
from sentiq.methods.fit import Fit
from sentiq.predictions import Prediction
from sentiq.settings import ModelSettings


def staged_batches(
    engine: Engine,
    bound: Bound,
    texts: Sequence[str],
    bodies: Sequence[Sequence[int]],
    fit: Fit,
    labels: Sequence[str],
    then: tuple[Engine, Bound] | None,
) -> Iterator[Done[list[Prediction]]]:
    """Every text's prediction at the stage it left at, a batch at a time (`bodies`: the texts as the
    prompt renders them for `engine`): its `exit` (layer) and, at the second model, its `exit_model`.
    `then`: the second model, loaded, with the prompt bound to it."""
    probes = [*(e.probe for e in fit.exits), fit.probe]  # the first model's stages
    layers = [*(e.layer for e in fit.exits), fit.layer]
    thresholds = fit.thresholds
    leave = lambda j, states: np.exp(probes[j].logprobs(states)).max(axis=1) > thresholds[j]  # noqa: E731
    for done in engine.exit_batches(bound.prefix, bodies, layers, leave):
        where = done.result[:, 0].astype(int)
        made: list[Prediction] = [None] * len(where)  # type: ignore[list-item]
        for j in np.unique(where):
            rows = np.flatnonzero(where == j)
            at_j = fitted_predictions(probes[j].logprobs(done.result[rows, 1:]), None, labels)
            for r, p in zip(rows, at_j):
                made[r] = replace(p, exit=layers[j])
        seconds = done.seconds
        if then is not None and fit.then is not None:
            seconds += _second(then, fit, [texts[i] for i in done.indices], made, labels)
        yield Done(done.indices, made, seconds)


def _second(
    then: tuple[Engine, Bound], fit: Fit, texts: list[str], made: list[Prediction], labels: Sequence[str]
) -> float:
    """The texts the first model's last probe is no more confident of than the threshold get the second
    model's probe instead (in `made`), the prompt rendered for the second model; its seconds."""
    assert fit.then is not None
    engine, bound = then
    unsure = [
        i for i, p in enumerate(made) if p.exit == fit.layer and max((p.scores or {}).values()) <= fit.then.threshold
    ]
    if not unsure:
        return 0.0
    states = np.zeros((len(unsure), engine.model.config.hidden_size))
    seconds = 0.0
    bodies = bound.bodies(engine, [texts[i] for i in unsure])
    for done in engine.state_batches(bound.prefix, bodies, fit.then.layer):
        states[done.indices] = done.result
        seconds += done.seconds
    at_then = fitted_predictions(fit.then.probe.logprobs(states), None, labels)
    for i, p in zip(unsure, at_then):
        made[i] = replace(p, exit=fit.then.layer, exit_model=fit.then.label)
    return seconds


def load_then(engine: Engine, then: Then) -> Engine:
    """A cascade's second model, on the first's device and dtype and within its batch limits, its weights
    checked against the fit's record of them."""
    lm = engine.lm
    dtype = str(lm.dtype).removeprefix("torch.")
    settings = ModelSettings(
        os.path.expanduser(str(then.model["source"])),
        lm.device.type,
        dtype,
        engine.max_batch_rows,
        engine.max_batch_tokens,
    )
    second = load_engine(settings)
    if model_digest(second.lm.source.kind, second.lm.source.ref, second.lm.revision) != then.model["weights_digest"]:
        raise OptionError(
            f"the fit's second model {then.label} ({then.model['source']}) is not the one it was fitted on "
            "(its weights differ): fit again"
        )
    return second
