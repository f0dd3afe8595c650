"""What `sentiq fit` does: labelled texts read as a search reads them, one pass through the model for
their label log-probabilities and answer states, both regressions fitted and scored by cross-validation,
and the fit written as a checked folder that --fit reads back."""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from sentiq.core.engine import Engine, load_engine
from sentiq.core.states import check_layer
from sentiq.errors import DataError
from sentiq.exit_options import check_exits
from sentiq.io.datasets import load_labelled, read_table
from sentiq.io.fits import check_free, write_fit
from sentiq.io.names import safe_name
from sentiq.learn_settings import FitSettings
from sentiq.methods.fitted import check_labels, fit_linear
from sentiq.methods.plan import plan_method
from sentiq.methods.runner import make_runner
from sentiq.progress import StartTask, no_progress
from sentiq.results import FitResult
from sentiq.settings import DataSpec, MethodConfig, ModelSettings
from sentiq.text import plural, text_digest
from sentiq.version import __version__
from sentiq.workflows.fit_stages import Stage, model_record, scored, second_model, staged_record, then_settings
from sentiq.workflows.tuning.splits import tuning_split

LIBRARIES = ("torch", "transformers", "scikit-learn", "numpy")


def fit(
    model: ModelSettings, settings: FitSettings, start_task: StartTask = no_progress, engine: Engine | None = None
) -> FitResult:
    """Fit calibration and probe on `settings`' labelled texts; written under output_dir/fits/. Everything
    that can be refused is refused before the model loads (but a --layer deeper than the model)."""
    plan = plan_method(MethodConfig(prompt=settings.prompt, max_tokens=settings.max_tokens))
    (prompt,) = plan.prompts
    split = tuning_split(settings.data, [prompt], settings.n, settings.seed, settings.sample, check=False)
    labels = plan.labels
    added = added_texts(settings.add, labels, split.texts)
    chosen = pd.concat([split.texts[["id", "text", "label"]], added], ignore_index=True)
    texts = list(chosen["text"])
    y = np.array([labels.index(label) for label in chosen["label"]])
    check_labels(y, labels)
    default = f"{prompt.ref}-n{len(texts)}" + (f"-layer{settings.layer}" if settings.layer else "")
    default += f"-exits{'-'.join(map(str, settings.exits))}" if settings.exits else ""
    second = then_settings(model, settings.then)
    default += f"-then-{second.source.label}" if second else ""
    name = safe_name(settings.name or default, "--name")
    folder = settings.output_dir / "fits" / safe_name(model.source.label) / safe_name("-".join(labels)) / name
    check_free(folder, settings.overwrite)
    engine = engine or load_engine(model)
    layer = int(settings.layer or engine.depth)
    check_layer(layer, engine.depth)
    check_exits(settings.exits, layer)
    runner = make_runner(engine, plan)
    advance = start_task(f"fit · {model.source.label}", len(texts))
    n, hidden = len(labels), engine.model.config.hidden_size
    layers = [*settings.exits, layer]
    features = np.zeros((len(texts), n + hidden * len(layers)))  # label log-probabilities, each layer's state
    seconds = 0.0
    for done in runner.feature_batches(texts, layers):
        features[done.indices] = done.result
        seconds += done.seconds
        advance(len(done.indices))
    advance = start_task("fit · cross-validation", 1 + len(layers))
    calibration, cal_score = fit_linear(features[:, :n], y, labels, settings.seed)
    advance(1)
    state = lambda j: features[:, n + hidden * j : n + hidden * (j + 1)]  # noqa: E731
    early = []
    for j in range(len(settings.exits)):
        early.append(fit_linear(state(j), y, labels, settings.seed))
        advance(1)
    probe, probe_score = fit_linear(state(len(layers) - 1), y, labels, settings.seed, curve=True)
    advance(1)
    then = second_model(second, engine, plan, texts, y, labels, settings.seed, start_task) if second else None
    stages = [Stage(k, p, s, k * engine.layer_parameters) for k, (p, s) in zip(settings.exits, early)]
    stages.append(Stage(layer, probe, probe_score, layer * engine.layer_parameters))
    if then is not None:
        stages.append(replace(then.stage, cost=stages[-1].cost + then.stage.cost))
    card = {
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": model_record(engine.lm),
        "prompt": prompt.record(),
        "labels": list(labels),
        "layer": layer,
        "depth": engine.depth,
        "max_tokens": settings.max_tokens,
        "n": len(texts),
        "counts": {label: int((y == i).sum()) for i, label in enumerate(labels)},
        "data": split.record,
        **({"added": {path: int((added["from"] == path).sum()) for path in settings.add}} if settings.add else {}),
        "seed": settings.seed,
        "calibration": scored(cal_score),
        "probe": scored(probe_score),
        **staged_record(stages, y, settings.max_loss, then),
        "versions": {"sentiq": __version__, **{lib: _version(lib) for lib in LIBRARIES}},
        "texts_sha256": [text_digest(t) for t in texts],
    }
    arrays = {**calibration.arrays("calibration"), **probe.arrays("probe"), "gold": y}
    for k, (linear, _) in zip(settings.exits, early):
        arrays.update(linear.arrays(f"exit{k}"))
    if then is not None:
        arrays.update(then.stage.probe.arrays("then_probe"))
    write_fit(folder, card, arrays, settings.overwrite)
    return FitResult(folder, card, cal_score, probe_score, seconds + (then.seconds if then is not None else 0.0))


def added_texts(paths: tuple[str, ...], labels: tuple[str, ...], sample: pd.DataFrame) -> pd.DataFrame:
    """The texts of each --add file (id, text, label in the set, and the file it came from), every row
    labelled; a text the sample or an earlier file holds is read once."""
    frames = []
    for path in paths:
        table = read_table(Path(path).expanduser())
        if "label" in table.columns:
            empty = table["label"].isna() | (table["label"].astype(str).str.strip() == "")
            if empty.any():
                raise DataError(
                    f"--add {path}: {plural(int(empty.sum()), 'row')} with no label (the first at row {int(empty.idxmax()) + 1}): "
                    "fill in their label column, or delete those rows"
                )
        frames.append(load_labelled(DataSpec(source=path), labels).assign(**{"from": path}))
    if not frames:
        return pd.DataFrame(columns=["id", "text", "label", "from"])
    added = pd.concat(frames, ignore_index=True)
    seen = {text_digest(t) for t in sample["text"]}
    digests = pd.Series([text_digest(t) for t in added["text"]], index=added.index)
    return added[~digests.isin(seen) & ~digests.duplicated()].reset_index(drop=True)


def _version(library: str) -> str | None:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None
