"""What a run folder holds beside its predictions: the record of how it was made (config.json), its
figures and confusion matrix when it ends, and a finished run read back as a result (or a run made in
memory written as a folder)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.core.models import describe_machine
from sentiq.io.runs import Run
from sentiq.methods.plan import MethodPlan
from sentiq.predictions import LabelSet, exit_name
from sentiq.results import Quality, RunResult, Speed, as_row
from sentiq.settings import EvalSettings, MethodConfig
from sentiq.text import LABELS
from sentiq.version import __version__
from sentiq.workflows.confidence import (
    confidence_metrics,
    full_labels,
    run_probabilities,
    scored,
    scored_rows,
    selective,
)
from sentiq.workflows.confidence_plots import plot_confidence
from sentiq.workflows.metrics import quality, speed
from sentiq.workflows.plots import plot_confusion


def saved_result(run: Run, method: MethodConfig) -> RunResult:
    """The result a finished run left on disk."""
    m = json.loads((run.folder / "metrics.json").read_text())
    pick = lambda kind: kind(**{f.name: m[f.name] for f in fields(kind) if f.name in m})  # noqa: E731
    rows = pd.read_csv(
        run.folder / "predictions.csv", dtype={"id": str, "gold": str, "predicted": str}, keep_default_na=False
    )
    return RunResult(run.run_id, run.folder, method, pick(Quality), pick(Speed), run.config, m["truncated"], True, rows)


def save_result(result: RunResult, root: Path) -> Path:
    """Write a run made in memory as a run folder under `root` (as `sentiq evaluate` leaves one); its folder."""
    if result.folder is not None:
        return result.folder
    config = {k: v for k, v in result.config.items() if k != "status"}
    run = Run.open(Path(root), result.run_id, config)
    with run:
        run.append(result.predictions.to_dict("records"))
        write_artifacts(run, result.method, result.predictions, result.metrics, config.get("model_label", ""))
    result.folder = run.folder
    return run.folder


def summarise(rows: pd.DataFrame, label_set: LabelSet, abstains: bool = False) -> tuple[Quality, Speed, dict[str, Any]]:
    """Quality, speed and metrics.json's figures from a run's predictions; a run that abstains is measured
    on every text as if it had not (an 'uncertain' text at its most probable label), and on those it
    answered."""
    gold, given = list(rows["gold"]), list(rows["predicted"])
    probs = run_probabilities(rows, label_set)
    full = full_labels(probs, given, label_set.labels)  # no text is 'uncertain' unless the run abstains
    q = quality(gold, full, label_set.labels, label_set.ordered)
    trust = confidence_metrics(scored(probs, full, gold, label_set.labels), label_set.labels)
    q = replace(q, **trust, **(selective(gold, given) if abstains else {}))
    latency = rows["latency_ms"].astype(float)
    sp = speed(float(latency.sum()) / 1000, int(rows["words"].sum()), int(rows["tokens"].sum()), list(latency))
    if "exit" in rows.columns:
        sp = replace(sp, **exit_shares(rows))
    return q, sp, {**as_row(q, sp), "truncated": int(rows["truncated"].astype(int).sum())}


def exit_shares(rows: pd.DataFrame) -> dict[str, Any]:
    """Where the texts of a staged run left: each exit's share (exit_name, in the order of the stages),
    and the layers run per text (not for a cascade across models, whose layers are not alike)."""
    models = rows["exit_model"] if "exit_model" in rows.columns else [None] * len(rows)
    names = pd.Series([exit_name(layer, model) for layer, model in zip(rows["exit"], models)])
    shares = names.value_counts(normalize=True)
    order = sorted(shares.index, key=lambda k: (":" in k, int(k.rsplit(":", 1)[-1])))
    cascade = "exit_model" in rows.columns
    return {
        "exit_shares": {k: float(shares[k]) for k in order},
        "mean_layers": None if cascade else float(rows["exit"].astype(int).mean()),
    }


def write_artifacts(
    run: Run, method: MethodConfig, rows: pd.DataFrame, metrics: dict[str, Any], model_label: str, **recorded: Any
) -> None:
    """The confusion matrix and, where texts have probabilities, the confidence figure (reliability and
    risk–coverage); then predictions and metrics, then the run marked complete."""
    title = f"{model_label} · {method.title()} · n={metrics['n']} · acc {metrics['accuracy']:.3f}"
    label_set = LabelSet(tuple(run.config.get("labels", LABELS)), bool(run.config.get("ordered")))
    plot_confusion(
        run.folder / "confusion_matrix.png", list(rows["gold"]), list(rows["predicted"]), title, label_set.labels
    )
    if metrics.get("scored"):
        plot_confidence(run.folder / "confidence.png", scored_rows(rows, label_set), metrics, title)
    run.finish(rows, metrics, **recorded)


def run_config(
    settings: EvalSettings,
    plan: MethodPlan,
    where: dict[str, Any],
    run_id: str,
    sample: pd.DataFrame,
    skipped_empty: int,
) -> dict[str, Any]:
    """Everything needed to reproduce the run and to compare it with others; `where`: the model,
    device, dtype and engine it runs on."""
    import platform

    import torch
    import transformers

    method = plan.config
    return {
        "run_id": run_id,
        "sentiq_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **where,
        "method": method.method,
        "method_title": plan.title(),
        "method_settings": method.relevant(),
        **({"tuned": method.tuned_from} if method.tuned_from else {}),
        **plan.record(),
        "dataset": asdict(settings.data),
        "n": len(sample),
        "sample_seed": settings.seed,
        **({"sample": settings.sample} if settings.sample != "balanced" else {}),  # balanced: as runs have been
        "sample_digest": sample_digest(sample),
        "skipped_empty_texts": skipped_empty,
        "batch_size": settings.model.batch_size,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "machine": describe_machine(),
    }


def sample_digest(sample: pd.DataFrame) -> str:
    """The sample by its content (its ids and labels, in any order): the same texts reached by another
    path, or drawn again with the same seed, have the same digest."""
    pairs = sorted(zip(sample["id"].astype(str), sample["label"].astype(str)))
    return hashlib.sha256(json.dumps(pairs).encode("utf-8")).hexdigest()[:16]
