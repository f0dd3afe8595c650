"""What `sentiq fit` does: labelled texts read as a search reads them, one pass through the model for
their label log-probabilities and answer states, both regressions fitted and scored by cross-validation,
and the fit written as a checked folder that --fit reads back."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentiq.core.engine import Engine, load_engine
from sentiq.core.models import home_relative
from sentiq.core.states import check_layer
from sentiq.errors import DataError
from sentiq.io.datasets import load_labelled, read_table
from sentiq.io.fits import check_free, model_digest, write_fit
from sentiq.io.names import safe_name
from sentiq.learn_settings import FitSettings
from sentiq.methods.fitted import check_labels, fit_linear
from sentiq.methods.plan import plan_method
from sentiq.methods.runner import make_runner
from sentiq.progress import StartTask, no_progress
from sentiq.results import FitResult, Score
from sentiq.settings import DataSpec, MethodConfig, ModelSettings
from sentiq.text import plural, text_digest
from sentiq.version import __version__
from sentiq.workflows.metrics import wilson
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
    name = safe_name(settings.name or default, "--name")
    folder = settings.output_dir / "fits" / safe_name(model.source.label) / safe_name("-".join(labels)) / name
    check_free(folder, settings.overwrite)
    engine = engine or load_engine(model)
    layer = int(settings.layer or engine.depth)
    check_layer(layer, engine.depth)
    runner = make_runner(engine, plan)
    advance = start_task(f"fit · {model.source.label}", len(texts))
    n = len(labels)
    features = np.zeros((len(texts), n + engine.model.config.hidden_size))  # label log-probabilities, state
    seconds = 0.0
    for done in runner.feature_batches(texts, layer):
        features[done.indices] = done.result
        seconds += done.seconds
        advance(len(done.indices))
    advance = start_task("fit · cross-validation", 2)
    calibration, cal_score = fit_linear(features[:, :n], y, labels, settings.seed)
    advance(1)
    probe, probe_score = fit_linear(features[:, n:], y, labels, settings.seed, curve=True)
    advance(1)
    lm = engine.lm
    card = {
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {
            "source": home_relative(lm.source.ref),
            "kind": lm.source.kind,
            "label": lm.source.label,
            "revision": lm.revision,
            "weights_digest": model_digest(lm.source.kind, lm.source.ref, lm.revision),
            "dtype": str(lm.dtype).removeprefix("torch."),
        },
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
        "calibration": _scored(cal_score),
        "probe": _scored(probe_score),
        "versions": {"sentiq": __version__, **{lib: _version(lib) for lib in LIBRARIES}},
        "texts_sha256": [text_digest(t) for t in texts],
    }
    arrays = {**calibration.arrays("calibration"), **probe.arrays("probe"), "gold": y}
    write_fit(folder, card, arrays, settings.overwrite)
    return FitResult(folder, card, cal_score, probe_score, seconds)


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


def _scored(score: Score) -> dict[str, Any]:
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


def _version(library: str) -> str | None:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None
