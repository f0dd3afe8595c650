"""The stages of a fit beyond its probe: early exits at earlier layers and a second, larger model after
it (`sentiq fit --exits K,K --then MODEL`): the second model's pass over the fitting texts, and the
thresholds chosen over every stage's held-out predictions, as the fit's card records them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sentiq.core.engine import Engine, load_engine
from sentiq.core.models import LoadedModel, home_relative
from sentiq.errors import OptionError
from sentiq.io.fits import model_digest
from sentiq.methods.exits import choose_thresholds
from sentiq.methods.fitted import Linear, fit_linear
from sentiq.methods.plan import MethodPlan
from sentiq.methods.runner import make_runner
from sentiq.progress import StartTask
from sentiq.results import Score
from sentiq.settings import ModelSettings
from sentiq.workflows.metrics import wilson


@dataclass(frozen=True)
class Stage:
    """A probe texts may leave at: its layer, its fit and score, and what a text leaving there has run
    (its model's non-embedding parameters up to `layer`, and every earlier model's whole)."""

    layer: int
    probe: Linear
    score: Score
    cost: float


@dataclass(frozen=True)
class Second:
    """The second model's stage, the card's record of the model, and its pass's seconds."""

    record: dict[str, Any]
    stage: Stage
    seconds: float


def model_record(lm: LoadedModel) -> dict[str, Any]:
    """What a fit's card keeps of a model: where it came from and the digest of its weights."""
    return {
        "source": home_relative(lm.source.ref),
        "kind": lm.source.kind,
        "label": lm.source.label,
        "revision": lm.revision,
        "weights_digest": model_digest(lm.source.kind, lm.source.ref, lm.revision),
        "dtype": str(lm.dtype).removeprefix("torch."),
    }


def scored(score: Score) -> dict[str, Any]:
    """A regression's cross-validated score as the card records it."""
    low, high = wilson(round(score.accuracy * score.n), score.n)
    return {
        "C": score.C,
        "folds": score.folds,
        "cv_accuracy": score.accuracy,
        "cv_accuracy_interval": [low, high],
        "cv_macro_recall": score.macro_recall,
        "nested": score.nested,
        **({"note": score.note()} if score.note() else {}),
        **({"learning_curve": [{"n": n, "cv_macro_recall": r} for n, r in score.curve]} if score.curve else {}),
    }


def then_settings(model: ModelSettings, then: str | None) -> ModelSettings | None:
    """--then's model, on the first model's device and dtype; refused (before anything loads) when it is
    the first model: the same hub id, or local weights of the same digest."""
    if then is None:
        return None
    second = replace(model, model=then)
    first, other = model.source, second.source
    if first.kind == "hub" or other.kind == "hub":
        same = first.kind == other.kind and first.ref == other.ref
    else:
        same = model_digest(first.kind, first.ref, None) == model_digest(other.kind, other.ref, None)
    if same:
        _refuse_same(then, first.label)
    return second


def _refuse_same(then: str, label: str) -> None:
    raise OptionError(
        f"--then {then} is the fit's own model ({label}): name a larger model for the texts the first is unsure of"
    )


def second_model(
    settings: ModelSettings,
    first: Engine,
    plan: MethodPlan,
    texts: list[str],
    y: np.ndarray,
    labels: tuple[str, ...],
    seed: int,
    start_task: StartTask,
) -> Second:
    """The second model loaded, its pass over the fitting texts for the state after its last layer, and
    a probe fitted on it; the model is let go once its states are read."""
    engine = load_engine(settings)
    lm = engine.lm
    if model_digest(lm.source.kind, lm.source.ref, lm.revision) == model_digest(
        first.lm.source.kind, first.lm.source.ref, first.lm.revision
    ):
        _refuse_same(str(settings.model), first.lm.source.label)
    runner = make_runner(engine, plan)
    advance = start_task(f"fit · {lm.source.label}", len(texts))
    states = np.zeros((len(texts), engine.model.config.hidden_size))
    seconds = 0.0
    for done in runner.feature_batches(texts, [engine.depth]):
        states[done.indices] = done.result[:, len(labels) :]
        seconds += done.seconds
        advance(len(done.indices))
    probe, score = fit_linear(states, y, labels, seed)
    record = {**model_record(lm), "layer": engine.depth, "depth": engine.depth, "probe": scored(score)}
    return Second(record, Stage(engine.depth, probe, score, engine.depth * engine.layer_parameters), seconds)


def staged_record(stages: list[Stage], y: np.ndarray, max_loss: float, then: Second | None) -> dict[str, Any]:
    """The card's record of the stages (none for a probe alone): each exit of the fit's own model (its
    layer, threshold, expected share of texts and probe's cross-validated accuracy; the last stage has
    no threshold), the second model with its expected share, and what the cascade gave on the held-out
    predictions its thresholds were chosen on, with the computation it expects to save against the
    last stage alone (parameters run per text). Each stage's cost is kept, so that its thresholds can be
    chosen again for another loss without a pass (Fit.rechosen)."""
    if len(stages) == 1:
        return {}
    chosen = choose_thresholds([s.probe.held_out for s in stages], y, [s.cost for s in stages], max_loss)
    thresholds = [*chosen.thresholds, None]
    own = len(stages) - (then is not None)
    exits = [
        {"layer": s.layer, "threshold": t, "expected_share": share, "cv_accuracy": s.score.accuracy, "cost": s.cost}
        for s, t, share in zip(stages[:own], thresholds, chosen.shares)
    ]
    alone = then.stage.cost if then is not None else stages[-1].cost
    early_exit: dict[str, Any] = {
        "max_loss": max_loss,
        "cv_accuracy": chosen.accuracy,
        "last_cv_accuracy": chosen.last_accuracy,
        "cv_macro_recall": chosen.macro_recall,
        "last_cv_macro_recall": chosen.last_macro_recall,
        "expected_speedup": alone / chosen.mean_cost,
    }
    if then is None:
        early_exit["mean_layers"] = float(sum(s.layer * share for s, share in zip(stages, chosen.shares)))
    last = {"expected_share": chosen.shares[-1], "cost": stages[-1].cost}
    second = {"then": {**then.record, **last}} if then is not None else {}
    return {"exits": exits, **second, "early_exit": early_exit}
