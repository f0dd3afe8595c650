"""What `evaluate` does, as a library call: load once, run each method on one balanced sample, keep
every prediction on disk as it arrives, and summarise from what is on disk."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq import __version__
from sentiq.calibration import prior_from_record
from sentiq.data import balanced_sample, load_labelled, load_pool
from sentiq.engine import Engine
from sentiq.errors import DataError, Interrupted
from sentiq.methods import Classifier, Prediction, draw_demonstrations
from sentiq.metrics import Quality, Speed, as_row, quality, speed
from sentiq.models import resolve_source
from sentiq.plots import plot_confusion
from sentiq.prompts import clean_text, load_prompts, word_count
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
    for method in settings.methods:  # so is a broken prompt file
        load_prompts(method.prompt)
    predictor = _predictor(settings, engine)
    results = []
    for method in settings.methods:
        config = run_config(
            settings, method, predictor.describe(), run_ids[method.method], len(sample), int(empty.sum())
        )
        try:
            results.append(_evaluate_one(settings, method, sample, predictor, config, start_task))
        except KeyboardInterrupt:
            folder = settings.output_dir / run_ids[method.method]
            raise Interrupted(
                f"interrupted; the predictions made so far are kept in {folder}: "
                f"run the same command with --resume {base} to continue"
            ) from None
    return results


def _predictor(settings: EvalSettings, engine: Engine | None) -> Any:
    if settings.ray.engine == "ray":
        from sentiq.ray_backend import RayPredictor

        return RayPredictor(settings.model, settings.ray)
    pool = load_pool() if any(m.method == "k-shot" for m in settings.methods) else None
    return LocalPredictor(engine or load_engine(settings.model), pool)


@dataclass
class LocalPredictor:
    """evaluate's texts labelled in this process, each batch's rows kept as soon as it is done."""

    engine: Engine
    pool: pd.DataFrame | None = None
    where: dict[str, Any] = field(default_factory=dict)  # nothing to add: describe() is what ran

    def describe(self) -> dict[str, Any]:
        return {
            **self.engine.lm.describe(),
            "engine": {"name": "local"},
            "max_batch_tokens": self.engine.batcher.max_tokens,
        }

    def predict(self, method: MethodConfig, todo: pd.DataFrame, keep: Callable, advance: Advance, run: Run) -> None:
        """A prior estimated earlier in this run is reused, so a resumed run calibrates as it began."""
        recorded = run.config.get("calibration")
        prior = prior_from_record(recorded) if recorded else None

        def on_prior(calibration: dict[str, Any]) -> None:
            run.record(calibration=calibration)
            run.log(f"calibration {calibration}")

        clf = Classifier(self.engine, method, pool=self.pool, prior=prior, on_prior=on_prior)
        clf.warm_up()
        texts, ids = list(todo["text"]), list(todo["id"])

        def on_done(idx: list[int], preds: list[Prediction], seconds: float) -> None:
            per_text = 1000 * seconds / max(1, len(idx))
            keep(
                [{"id": ids[i], "text": texts[i], **_prediction(p), "latency_ms": per_text} for i, p in zip(idx, preds)]
            )
            advance(len(idx), sum(word_count(texts[i]) for i in idx))

        clf.predict(texts, on_done)

    def peak_memory_bytes(self) -> int | None:
        return self.engine.peak_memory_bytes()


def _prediction(p: Prediction) -> dict[str, Any]:
    fields = ("p_positive", "p_positive_raw", "answer", "tokens", "truncated")
    return {"label": p.label, **{f: getattr(p, f) for f in fields}}


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
    predictor: Any,
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
        gold = dict(zip(sample["id"], sample["label"]))
        advance = start_task(f"{config['model_label']} · {method.method}", len(sample))
        advance(len(sample) - len(todo))

        def keep(rows: list[dict[str, Any]]) -> None:
            run.append(_row(r, gold[r["id"]]) for r in rows)
            seconds = sum(float(r["latency_ms"]) for r in rows) / 1000
            run.log(f"batch texts={len(rows)} tokens={sum(r['tokens'] for r in rows)} seconds={seconds:.4f}")

        start = time.perf_counter()
        predictor.predict(method, todo, keep, advance, run)
        run.log(f"inference seconds={time.perf_counter() - start:.3f} texts={len(todo)}")
        rows = run.predictions(list(sample["id"]))
        return _finish(run, method, rows, config["model_label"], predictor)


def _row(r: dict[str, Any], gold: str) -> dict[str, Any]:
    """A prediction as predictions.csv holds it."""
    prob = lambda x: None if x is None or pd.isna(x) else round(float(x), 6)  # noqa: E731
    return {
        "id": str(r["id"]),
        "gold": gold,
        "predicted": r["label"],
        "p_positive": prob(r["p_positive"]),
        "p_positive_raw": prob(r["p_positive_raw"]),
        "answer": r["answer"] or "",
        "words": word_count(r["text"]),
        "tokens": int(r["tokens"]),
        "truncated": int(r["truncated"]),
        "latency_ms": round(float(r["latency_ms"]), 3),
    }


def _finish(run: Run, method: MethodConfig, rows: pd.DataFrame, model_label: str, predictor: Any) -> RunResult:
    """Metrics from the predictions on disk (so a resumed run summarises exactly like an uninterrupted one)."""
    q = quality(list(rows["gold"]), list(rows["predicted"]))
    latency = rows["latency_ms"].astype(float)
    s = speed(float(latency.sum()) / 1000, int(rows["words"].sum()), int(rows["tokens"].sum()), list(latency))
    metrics = {**as_row(q, s), "truncated": int(rows["truncated"].astype(int).sum())}
    if metrics["truncated"]:
        run.log(
            f"truncated {metrics['truncated']} texts longer than {method.max_tokens} tokens (their middle left out)"
        )
    title = f"{model_label} · {method.title()} · n={q.n} · acc {q.accuracy:.3f}"
    plot_confusion(run.folder / "confusion_matrix.png", list(rows["gold"]), list(rows["predicted"]), title)
    peak = predictor.peak_memory_bytes()
    run.log(
        f"totals n={q.n} accuracy={q.accuracy:.4f} macro_f1={q.macro_f1:.4f} invalid={q.invalid} "
        f"words_per_s={s.words_per_s:.1f} peak_memory_bytes={peak}"
    )
    run.finish(rows, metrics, peak_memory_bytes=peak, **predictor.where)
    return RunResult(run.folder.name, run.folder, method, q, s, run.config, metrics["truncated"])


def run_config(
    settings: EvalSettings, method: MethodConfig, where: dict[str, Any], run_id: str, n: int, skipped_empty: int
) -> dict[str, Any]:
    """Everything needed to reproduce the run and to compare it with others; `where`: the model,
    device, dtype and engine it runs on."""
    import torch
    import transformers

    return {
        "run_id": run_id,
        "sentiq_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **where,
        "method": method.method,
        "method_title": method.title(),
        "method_settings": method.relevant(),
        "prompts": [p.record() for p in load_prompts(method.prompt)],
        **demonstrations(method),
        "dataset": asdict(settings.data),
        "n": n,
        "sample_seed": settings.seed,
        "skipped_empty_texts": skipped_empty,
        "batch_size": settings.model.batch_size,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def demonstrations(method: MethodConfig) -> dict[str, Any]:
    """k-shot's demonstrations, as shown: which texts were drawn is part of what a run measured."""
    if method.method != "k-shot":
        return {}
    drawn = draw_demonstrations(load_pool(), method.k, method.demo_draw)
    return {"demonstrations": [{"label": label, "text": text} for text, label in drawn]}


def _quiet_transformers() -> None:
    """Keep library progress bars and advice out of the tool's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
