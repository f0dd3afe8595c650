"""What `evaluate` does, as a library call: load once, run each method on one balanced sample, keep
every prediction on disk as it arrives, and summarise from what is on disk."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq import __version__
from sentiq.data import balanced_sample, load_labelled, load_pool
from sentiq.engine import Engine
from sentiq.errors import DataError, Interrupted
from sentiq.methods import Classifier, Prediction
from sentiq.metrics import Quality, Speed, as_row, quality, speed
from sentiq.models import resolve_source
from sentiq.plots import plot_confusion
from sentiq.prompts import clean_text, word_count
from sentiq.runs import Run, check_run_id, make_run_id, safe_name
from sentiq.settings import EvalSettings, MethodConfig, ModelSettings

Advance = Callable[[int], None]
StartTask = Callable[[str, int], Advance]  # (description, total) -> advance(n)


@dataclass
class RunResult:
    run_id: str
    folder: Path
    method: MethodConfig
    quality: Quality
    speed: Speed
    config: dict[str, Any] = field(default_factory=dict)
    truncated: int = 0  # texts that lost their middle to --max-tokens
    already_complete: bool = False  # resumed after it had finished: nothing was redone

    @classmethod
    def saved(cls, run: Run, method: MethodConfig) -> RunResult:
        """The result a finished run left on disk."""
        import json

        m = json.loads((run.folder / "metrics.json").read_text())
        pick = lambda kind: kind(**{f.name: m[f.name] for f in fields(kind)})  # noqa: E731
        return cls(run.folder.name, run.folder, method, pick(Quality), pick(Speed), run.config, m["truncated"], True)


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
    base, run_ids = run_ids_for(settings)
    for run_id in run_ids.values():  # before the model loads: a clash should not cost a minute
        check_run_id(settings.output_dir, run_id, settings.resume)
    engine = engine or load_engine(settings.model)
    pool = load_pool() if any(m.method == "k-shot" for m in settings.methods) else None
    results = []
    for method in settings.methods:
        config = run_config(settings, method, engine, run_ids[method.method], len(sample), int(empty.sum()))
        try:
            results.append(_evaluate_one(settings, method, sample, engine, pool, config, start_task))
        except KeyboardInterrupt:
            folder = settings.output_dir / run_ids[method.method]
            raise Interrupted(
                f"interrupted; the predictions made so far are kept in {folder}: "
                f"run the same command with --resume {base} to continue"
            ) from None
    return results


def run_ids_for(settings: EvalSettings) -> tuple[str, dict[str, str]]:
    """The id to resume with, and each method's run folder: the id itself for one method given by
    name, '<id>-<method>' otherwise (a new id is time-model)."""
    if settings.run_id is not None and len(settings.methods) == 1:
        only = safe_name(settings.run_id)
        return only, {settings.methods[0].method: only}
    base = safe_name(settings.run_id) if settings.run_id else make_run_id(resolve_source(settings.model.model).label)
    ids = {m.method: safe_name(f"{base}-{m.method}") for m in settings.methods}
    return (base if len(ids) > 1 else next(iter(ids.values()))), ids


def _evaluate_one(
    settings: EvalSettings,
    method: MethodConfig,
    sample: pd.DataFrame,
    engine: Engine,
    pool: pd.DataFrame | None,
    config: dict[str, Any],
    start_task: StartTask,
) -> RunResult:
    run = Run.open(settings.output_dir, config["run_id"], config, settings.resume)
    if run.complete:
        return RunResult.saved(run, method)
    with run:
        run.log(f"settings {config}")
        done = {r["id"] for r in run.done}
        todo = sample[~sample["id"].isin(done)]
        clf = Classifier(engine, method, pool=pool)
        clf.warm_up()
        advance = start_task(f"{engine.lm.source.label} · {method.method}", len(sample))
        advance(len(sample) - len(todo))
        texts, ids, gold = list(todo["text"]), list(todo["id"]), list(todo["label"])

        def on_done(idx: list[int], preds: list[Prediction], seconds: float) -> None:
            per_text = 1000 * seconds / max(1, len(idx))
            run.append(_row(ids[i], gold[i], texts[i], p, per_text) for i, p in zip(idx, preds))
            run.log(f"batch texts={len(idx)} tokens={sum(p.tokens for p in preds)} seconds={seconds:.4f}")
            advance(len(idx))

        start = time.perf_counter()
        clf.predict(texts, on_done)
        run.log(f"inference seconds={time.perf_counter() - start:.3f} texts={len(texts)}")
        rows = run.predictions(list(sample["id"]))
        return _finish(run, method, rows, engine)


def _row(text_id: str, gold: str, text: str, p: Prediction, latency_ms: float) -> dict[str, Any]:
    return {
        "id": text_id,
        "gold": gold,
        "predicted": p.label,
        "p_positive": None if p.p_positive is None else round(p.p_positive, 6),
        "p_positive_raw": None if p.p_positive_raw is None else round(p.p_positive_raw, 6),
        "answer": p.answer or "",
        "words": word_count(text),
        "tokens": p.tokens,
        "truncated": int(p.truncated),
        "latency_ms": round(latency_ms, 3),
    }


def _finish(run: Run, method: MethodConfig, rows: pd.DataFrame, engine: Engine) -> RunResult:
    """Metrics from the predictions on disk (so a resumed run summarises exactly like an uninterrupted one)."""
    q = quality(list(rows["gold"]), list(rows["predicted"]))
    latency = rows["latency_ms"].astype(float)
    s = speed(float(latency.sum()) / 1000, int(rows["words"].sum()), int(rows["tokens"].sum()), list(latency))
    metrics = {**as_row(q, s), "truncated": int(rows["truncated"].astype(int).sum())}
    if metrics["truncated"]:
        run.log(
            f"truncated {metrics['truncated']} texts longer than {method.max_tokens} tokens (their middle left out)"
        )
    title = f"{engine.lm.source.label} · {method.title()} · n={q.n} · acc {q.accuracy:.3f}"
    plot_confusion(run.folder / "confusion_matrix.png", list(rows["gold"]), list(rows["predicted"]), title)
    peak = engine.peak_memory_bytes()
    run.log(
        f"totals n={q.n} accuracy={q.accuracy:.4f} macro_f1={q.macro_f1:.4f} invalid={q.invalid} "
        f"words_per_s={s.words_per_s:.1f} peak_memory_bytes={peak}"
    )
    run.finish(rows, metrics, peak_memory_bytes=peak)
    return RunResult(run.folder.name, run.folder, method, q, s, run.config, metrics["truncated"])


def run_config(
    settings: EvalSettings, method: MethodConfig, engine: Engine, run_id: str, n: int, skipped_empty: int
) -> dict[str, Any]:
    """Everything needed to reproduce the run and to compare it with others."""
    import torch
    import transformers

    return {
        "run_id": run_id,
        "sentiq_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **engine.lm.describe(),
        "method": method.method,
        "method_title": method.title(),
        "method_settings": method.relevant(),
        "dataset": asdict(settings.data),
        "n": n,
        "sample_seed": settings.seed,
        "skipped_empty_texts": skipped_empty,
        "batch_size": settings.model.batch_size,
        "max_batch_tokens": engine.batcher.max_tokens,
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
