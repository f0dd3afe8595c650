"""What the `evaluate` and `classify` commands do, as library calls: load once, run methods, keep
every prediction on disk as it arrives, and summarise."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq import __version__
from sentiq.data import DataSpec, balanced_sample, load_labelled, load_pool
from sentiq.engine import Engine
from sentiq.errors import DataError, RunError
from sentiq.methods import Classifier, MethodConfig, Prediction
from sentiq.metrics import Quality, Speed, as_row, quality, speed
from sentiq.models import resolve_source
from sentiq.prompts import clean_text, word_count
from sentiq.runs import (
    PREDICTION_FIELDS,
    PredictionLog,
    RunLog,
    make_run_id,
    plot_confusion,
    read_partial,
    run_dir,
    run_path,
    safe_name,
    write_frame,
    write_json,
)

Advance = Callable[[int], None]
StartTask = Callable[[str, int], Advance]  # (description, total) -> advance(n)


@dataclass
class ModelSettings:
    model: str | None = None  # alias, hub id, folder or .gguf; None: SENTIQ_MODEL or the default
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None  # texts per batch; None: bounded by the device's token budget
    max_batch_tokens: int | None = None


@dataclass
class EvalSettings:
    model: ModelSettings
    data: DataSpec
    methods: list[MethodConfig]
    n: int | None = 200
    seed: int = 0
    output_dir: Path = Path("results")
    run_id: str | None = None  # with several methods, each run gets '-<method>' appended
    resume: bool = False  # continue the run folders named by run_id
    skipped_empty: int = 0  # empty texts left out of the dataset before sampling


@dataclass
class RunResult:
    run_id: str
    folder: Path
    method: MethodConfig
    quality: Quality
    speed: Speed
    config: dict[str, Any] = field(default_factory=dict)
    truncated: int = 0  # texts that lost their middle to --max-tokens


def load_engine(settings: ModelSettings) -> Engine:
    from sentiq.models import load_model

    _quiet_transformers()
    lm = load_model(settings.model, settings.device, settings.dtype)
    return Engine(lm, max_batch_tokens=settings.max_batch_tokens, max_batch_rows=settings.batch_size)


def evaluate(settings: EvalSettings, start_task: StartTask, engine: Engine | None = None) -> list[RunResult]:
    """Run each method on one balanced sample; each method gets its own run folder."""
    labelled = load_labelled(settings.data)
    empty = labelled["text"].map(lambda t: not clean_text(t))
    if empty.all():
        raise DataError("every text in the dataset is empty")
    # Empty texts have no sentiment to measure: they are left out and counted, never guessed.
    sample = balanced_sample(labelled[~empty], settings.n, settings.seed)
    settings.skipped_empty = int(empty.sum())
    run_ids = {m.method: _run_id(settings, m) for m in settings.methods}
    for run_id in run_ids.values():  # before the model loads: a clash should not cost a minute
        if not settings.resume and (run_path(settings.output_dir, run_id) / "config.json").exists():
            raise RunError(
                f"run {run_id} already exists in {settings.output_dir}: add --resume to continue it, or choose another --run-id"
            )
    engine = engine or load_engine(settings.model)
    pool = load_pool() if any(m.method == "k-shot" for m in settings.methods) else None
    results = []
    for method in settings.methods:
        results.append(_evaluate_one(settings, method, sample, engine, pool, run_ids[method.method], start_task))
    return results


def _run_id(settings: EvalSettings, method: MethodConfig) -> str:
    if settings.run_id is None:
        return make_run_id(resolve_source(settings.model.model).label, method.method)
    if len(settings.methods) > 1:
        return safe_name(f"{settings.run_id}-{method.method}")
    return safe_name(settings.run_id)


def _evaluate_one(
    settings: EvalSettings,
    method: MethodConfig,
    sample: pd.DataFrame,
    engine: Engine,
    pool: pd.DataFrame | None,
    run_id: str,
    start_task: StartTask,
) -> RunResult:
    folder = run_dir(settings.output_dir, run_id)
    config = run_config(settings, method, engine, run_id, len(sample))
    done = _resumable(folder, config) if settings.resume else None
    if done is None:
        (folder / "predictions.partial.csv").unlink(missing_ok=True)
    write_json(folder / "config.json", {**config, "status": "incomplete"})
    log = RunLog(folder)
    partial = PredictionLog(folder)
    try:
        log(f"settings {config}")
        todo = sample if done is None else sample[~sample["id"].isin(set(done["id"]))]
        if done is not None:
            log(f"resume: {len(done)} predictions on disk, {len(todo)} to go")
        clf = Classifier(engine, method, pool=pool)
        clf.warm_up()
        advance = start_task(f"{engine.lm.source.label} · {method.method}", len(sample))
        advance(len(sample) - len(todo))
        texts, ids, gold = list(todo["text"]), list(todo["id"]), list(todo["label"])

        def on_done(idx: list[int], preds: list[Prediction], seconds: float) -> None:
            per_text = 1000 * seconds / max(1, len(idx))
            partial.append(_row(ids[i], gold[i], texts[i], p, per_text) for i, p in zip(idx, preds))
            log(f"batch texts={len(idx)} tokens={sum(p.tokens for p in preds)} seconds={seconds:.4f}")
            advance(len(idx))

        start = time.perf_counter()
        clf.predict(texts, on_done)
        log(f"inference seconds={time.perf_counter() - start:.3f} texts={len(texts)}")
        partial.close()
        rows = read_partial(folder).set_index("id").loc[list(sample["id"])].reset_index()
        return _finish(folder, config, method, rows, engine, log)
    finally:
        partial.close()
        log.close()


# Settings that must match for a resumed run to continue the same work.
SAME_WORK = ("model", "dtype", "method", "method_settings", "dataset", "n", "sample_seed")


def _resumable(folder: Path, config: dict[str, Any]) -> pd.DataFrame:
    """The predictions an interrupted run left, after checking it was the same work."""
    path = folder / "config.json"
    if not path.exists():
        raise RunError(f"nothing to resume: {folder} holds no run (check --run-id and --output-dir)")
    try:
        before = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"cannot resume {folder.name}: its config.json is unreadable ({exc})") from exc
    changed = [
        k for k in SAME_WORK if json.dumps(before.get(k), sort_keys=True) != json.dumps(config.get(k), sort_keys=True)
    ]
    if changed:
        first = changed[0]
        raise RunError(
            f"cannot resume {folder.name} with other settings: {first} was {before.get(first)!r}, now {config.get(first)!r}"
        )
    return read_partial(folder)


def _row(text_id: str, gold: str, text: str, p: Prediction, latency_ms: float) -> dict[str, Any]:
    return {
        "id": text_id,
        "gold": gold,
        "predicted": p.label,
        "p_positive": "" if p.p_positive is None else f"{p.p_positive:.6f}",
        "p_positive_raw": "" if p.p_positive_raw is None else f"{p.p_positive_raw:.6f}",
        "answer": p.answer or "",
        "words": word_count(text),
        "tokens": p.tokens,
        "truncated": int(p.truncated),
        "latency_ms": f"{latency_ms:.3f}",
    }


def _finish(
    folder: Path, config: dict[str, Any], method: MethodConfig, rows: pd.DataFrame, engine: Engine, log: RunLog
) -> RunResult:
    """Metrics from the predictions on disk (so a resumed run summarises exactly like an uninterrupted one)."""
    q = quality(list(rows["gold"]), list(rows["predicted"]))
    latency = rows["latency_ms"].astype(float)
    seconds = float(latency.sum()) / 1000
    s = speed(seconds, int(rows["words"].sum()), int(rows["tokens"].sum()), list(latency))
    write_frame(folder / "predictions.csv", rows[PREDICTION_FIELDS])
    metrics = {**as_row(q, s), "truncated": int(rows["truncated"].astype(int).sum())}
    if metrics["truncated"]:
        log(f"truncated {metrics['truncated']} texts longer than {method.max_tokens} tokens (their middle left out)")
    write_json(folder / "metrics.json", metrics)
    write_frame(folder / "metrics.csv", pd.DataFrame([metrics]))
    title = f"{engine.lm.source.label} · {_method_title(method)} · n={q.n} · acc {q.accuracy:.3f}"
    plot_confusion(folder / "confusion_matrix.png", list(rows["gold"]), list(rows["predicted"]), title)
    peak = engine.peak_memory_bytes()
    log(
        f"totals n={q.n} accuracy={q.accuracy:.4f} macro_f1={q.macro_f1:.4f} invalid={q.invalid} words_per_s={s.words_per_s:.1f} peak_memory_bytes={peak}"
    )
    config = {**config, "status": "complete", "peak_memory_bytes": peak}
    write_json(folder / "config.json", config)
    (folder / "predictions.partial.csv").unlink(missing_ok=True)
    return RunResult(folder.name, folder, method, q, s, config, metrics["truncated"])


def _method_title(method: MethodConfig) -> str:
    bits = [method.method]
    if method.method == "k-shot":
        bits.append(f"k={method.k} {method.scoring}")
    if method.method == "sampling":
        bits.append(f"T={method.temperature} top-k={method.top_k} x{method.samples}")
    if method.calibrate and method.scores_labels:
        bits.append("calibrated")
    return " ".join(bits)


def run_config(settings: EvalSettings, method: MethodConfig, engine: Engine, run_id: str, n: int) -> dict[str, Any]:
    """Everything needed to reproduce the run and to compare it with others."""
    import torch
    import transformers

    return {
        "run_id": run_id,
        "sentiq_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **engine.lm.describe(),
        "method": method.method,
        "method_title": _method_title(method),
        "method_settings": method.relevant(),
        "dataset": asdict(settings.data),
        "n": n,
        "sample_seed": settings.seed,
        "skipped_empty_texts": settings.skipped_empty,
        "batch_size": settings.model.batch_size,
        "max_batch_tokens": engine.max_batch_tokens,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def _quiet_transformers() -> None:
    """Keep library progress bars and advice out of the tool's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
