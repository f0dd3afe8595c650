"""What `evaluate` does: load once, run each method on one balanced sample and summarise it. With an
output folder every prediction is kept on disk as it arrives and the summary is made from what is on
disk (so an interrupted run resumes and ends exactly as an uninterrupted one); without one, in memory."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.backends.local import LocalPredictor, Predictor
from sentiq.core.engine import Engine, load_engine
from sentiq.errors import DataError, Interrupted, OptionError
from sentiq.io.datasets import load_labelled, texts_used
from sentiq.io.files import same_or_inside
from sentiq.io.names import make_run_id, safe_name
from sentiq.io.runs import MemoryRun, Run, check_run_id
from sentiq.io.samples import draw_sample, fitted_sample
from sentiq.methods.plan import MethodPlan, plan_method
from sentiq.predictions import run_row
from sentiq.progress import StartTask, no_progress
from sentiq.results import CalibrationRecord, RunResult
from sentiq.settings import DataSpec, EvalSettings, MethodConfig
from sentiq.text import clean_text, text_digest
from sentiq.workflows.run_files import run_config, saved_result, summarise, write_artifacts

log = logging.getLogger(__name__)


def evaluate(
    settings: EvalSettings, start_task: StartTask = no_progress, engine: Engine | None = None
) -> list[RunResult]:
    """Run each method on one balanced sample; with settings.output_dir, each method gets its own run
    folder there. `engine`: a model already loaded."""
    refuse_demos_of_the_data(settings.data, settings.methods)
    plans = [plan_method(m) for m in settings.methods]  # each prompt file read, demonstrations drawn, once
    labels = run_labels(plans)
    labelled, left_out = _leave_out_learned(load_labelled(settings.data, labels), plans)
    empty = labelled["text"].map(lambda t: not clean_text(t))
    if empty.all():
        raise DataError("every text in the dataset is empty")
    # Empty texts have no sentiment to measure: they are left out and counted, never guessed.
    if not settings.n_given:  # the default n, fitted to what the data allows
        n, rule, why = fitted_sample(labelled[~empty], settings.n, labels, settings.sample)
        settings = replace(settings, n=n, sample=rule)
        if why:
            log.warning(why)
    sample = draw_sample(labelled[~empty], settings.n, settings.seed, labels, settings.sample)
    base, run_ids = run_ids_for(settings)
    if settings.output_dir is not None:
        for run_id in run_ids.values():  # before the model loads: a clash should not cost a minute
            check_run_id(settings.output_dir, run_id, settings.resume)
    predictor = _predictor(settings, engine)
    results = []
    for plan in plans:
        method = plan.config
        config = run_config(settings, plan, predictor.describe(), run_ids[method.method], sample, int(empty.sum()))
        if method.tuned_on:
            config["tuning_texts_left_out"] = left_out
        if plan.fit is not None:
            config["fitted_texts_left_out"] = left_out
        try:
            results.append(_evaluate_one(settings, plan, sample, predictor, config, start_task))
        except KeyboardInterrupt:
            if settings.output_dir is None:
                raise Interrupted("interrupted; nothing was kept (give an output folder to keep predictions)") from None
            folder = settings.output_dir / run_ids[method.method]
            raise Interrupted(
                f"interrupted; the predictions made so far are kept in {folder}: "
                f"run the same command with --resume {base} to continue"
            ) from None
    return results


def _leave_out_learned(labelled: pd.DataFrame, plans: list[MethodPlan]) -> tuple[pd.DataFrame, int]:
    """The texts less those a --tuned choice was searched on or a --fit was fitted on (none but in the data
    it learned from), and how many that was: what learned from a text is never measured on it."""
    used = texts_used(sorted({f for p in plans for f in p.config.tuned_on}))
    used |= {d for p in plans if p.fit is not None for d in p.fit.texts}
    seen = labelled["text"].map(text_digest).isin(used) if used else pd.Series(False, index=labelled.index)
    if seen.all():
        what = "fitted on by --fit" if any(p.fit is not None for p in plans) else "searched on by the --tuned choice"
        raise DataError(f"every text of the dataset was {what}: evaluate on other texts")
    return labelled[~seen].reset_index(drop=True), int(seen.sum())


def refuse_demos_of_the_data(spec: DataSpec, methods: list[MethodConfig]) -> None:
    """Demonstrations are never the texts being measured: --demos that is the --dataset is refused."""
    data = Path(spec.source)
    for m in methods:
        if m.demos is not None and data.expanduser().exists() and same_or_inside(Path(m.demos), data):
            raise OptionError(
                f"--demos {m.demos} is the --dataset being evaluated: draw demonstrations from other texts"
            )


def run_labels(plans: list[MethodPlan]) -> tuple[str, ...]:
    """The label set every method's prompts share (checked before the model loads, as is a broken prompt
    file): one sample is measured in one label set."""
    found = {p.labels for p in plans}
    if len(found) > 1:
        sets = "; ".join(", ".join(labels) for labels in sorted(found))
        raise OptionError(f"the methods' prompts have different label sets ({sets}): evaluate them apart")
    return found.pop()


def _predictor(settings: EvalSettings, engine: Engine | None) -> Predictor:
    if settings.ray.backend == "ray" and engine is not None:
        raise OptionError(
            "a Classifier is a model loaded in this process; on Ray give model= a name and each worker loads it"
        )
    if settings.ray.backend == "ray":
        from sentiq.backends.ray import RayPredictor

        return RayPredictor(settings.model, settings.ray)
    return LocalPredictor(engine or load_engine(settings.model))


def run_ids_for(settings: EvalSettings) -> tuple[str, dict[str, str]]:
    """The id to resume with, and each method's run folder: the id itself for one method given by
    name, '<id>-<method>' otherwise (a new id is time-model)."""
    if settings.run_id is not None and len(settings.methods) == 1:
        only = safe_name(settings.run_id)
        return only, {settings.methods[0].method: only}
    base = safe_name(settings.run_id) if settings.run_id else make_run_id(settings.model.source.label)
    ids = {m.method: safe_name(f"{base}-{m.method}") for m in settings.methods}
    return (base if len(ids) > 1 else next(iter(ids.values()))), ids


def _evaluate_one(
    settings: EvalSettings,
    plan: MethodPlan,
    sample: pd.DataFrame,
    predictor: Predictor,
    config: dict[str, Any],
    start_task: StartTask,
) -> RunResult:
    method = plan.config
    if settings.output_dir is None:
        run: Run | MemoryRun = MemoryRun(config["run_id"], config)
    else:
        run = Run.open(settings.output_dir, config["run_id"], config, settings.resume)
        if run.complete:
            return saved_result(run, method)
    with run:
        run.log(f"settings {config}")
        done = {r["id"] for r in run.done}
        todo = sample[~sample["id"].isin(done)]
        gold = dict(zip(sample["id"], sample["label"]))
        advance = start_task(f"{method.method} · {config['model_label']}", len(sample))  # cut from the right
        advance(len(sample) - len(todo))

        start = time.perf_counter()
        kept = run.config.get("calibration")
        for done in predictor.predict(plan, todo, CalibrationRecord.of(kept) if kept else None):
            if done.calibration is not None:  # kept, so that a resumed run calibrates as it began
                run.record(calibration=done.calibration.as_dict())
                run.log(f"calibration {done.calibration.as_dict()}")
            run.append(run_row(r, gold[r["id"]], plan.label_set) for r in done.rows)
            tokens = sum(r["tokens"] for r in done.rows)
            run.log(f"batch texts={len(done.rows)} tokens={tokens} seconds={done.seconds:.4f}")
            advance(len(done.rows), done.words, done.seconds)
        run.log(f"inference seconds={time.perf_counter() - start:.3f} texts={len(todo)}")
        rows = run.predictions(list(sample["id"]), plan.label_set.run_fields())
        q, s, metrics = summarise(rows, plan.label_set, plan.threshold is not None)
        if metrics["truncated"]:
            run.log(
                f"truncated {metrics['truncated']} texts longer than {method.max_tokens} tokens (their middle left out)"
            )
        peak = predictor.peak_memory_bytes()
        run.log(
            f"totals n={q.n} accuracy={q.accuracy:.4f} macro_f1={q.macro_f1} invalid={q.invalid} "
            f"words_per_s={s.words_per_s:.1f} peak_memory_bytes={peak}"
        )
        recorded = {"peak_memory_bytes": peak, **predictor.where}
        if isinstance(run, Run):
            write_artifacts(run, method, rows, metrics, config["model_label"], **recorded)
        else:
            run.finish(rows, metrics, **recorded)
        return RunResult(run.run_id, run.folder, method, q, s, run.config, metrics["truncated"], predictions=rows)
