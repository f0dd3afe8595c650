"""`sentiq evaluate`: methods measured on one labelled sample through the API, the runs saved and shown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentiq.choices import method_names
from sentiq.cli import groups as g
from sentiq.cli import method_options as m
from sentiq.cli import options as o
from sentiq.cli import render
from sentiq.cli.guard import guarded
from sentiq.errors import OptionError
from sentiq.settings import DataSpec, EvalSettings, MethodConfig, ModelSettings, RaySettings


@guarded
@g.grouped
def evaluate(
    ctx: typer.Context,
    resume_id: Annotated[str | None, typer.Argument(metavar="RUN_ID", hidden=True, show_default=False)] = None,
    data: DataSpec = g.EVAL_DATA,
    n: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            rich_help_panel=o.DATA_PANEL,
            help="Sample size, as many texts of every label (--sample balanced) or in the data's proportions. "
            f"\\[default: {EvalSettings.n}, or the largest sample a smaller dataset allows]",
        ),
    ] = None,
    sample: o.Sample = EvalSettings.sample,
    methods: m.MethodList = [MethodConfig.method],  # noqa: B006 - Typer reads the default from here
    models: ModelSettings = g.MODEL,
    method_options: g.MethodOptions = g.METHOD,
    seed: o.Seed = MethodConfig.seed,
    tuned: m.Tuned = False,
    scale: RaySettings = g.RAY,
    output_dir: o.OutputDir = Path("results"),
    run_id: Annotated[
        str | None, typer.Option(help="Name of the run folder. \\[default: time-model-method]", show_default=False)
    ] = EvalSettings.run_id,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run: --resume RUN_ID alone reads its settings back (options given must match).",
        ),
    ] = EvalSettings.resume,
    json_out: o.Json = False,
) -> None:
    """Measure methods on a balanced labelled sample and save the run under results/."""
    from sentiq.api import evaluate as run_evaluate
    from sentiq.api import resume_run
    from sentiq.api.options import method_configs

    target = _resume_target(run_id, resume, resume_id)
    names = method_names([name for group in methods for name in ([group] if isinstance(group, str) else group)])
    if resume and target is not None and not tuned:  # the record, the options given laid over it
        given = _given(ctx)
        given |= {"methods": names} if "methods" in given else {}
        with render.progress(enabled=not json_out and not scale.shows_progress) as start_task:
            evaluation = resume_run(target, output_dir, progress=start_task, **given)
        render.evaluated(evaluation.runs, json_out)
        return
    with render.progress(enabled=not json_out and not scale.shows_progress) as start_task:
        evaluation = run_evaluate(
            models,
            method_configs(names, seed=seed, **method_options.values),
            dataset=data,
            n="auto" if n is None else n,
            seed=seed,
            sample=sample,
            tuned=tuned,
            results_dir=output_dir,
            output_dir=output_dir,
            run_id=target,
            resume=resume,
            scale=scale,
            progress=start_task,
        )
    render.evaluated(evaluation.runs, json_out)


NAMING = {"resume_id", "run_id", "resume", "output_dir", "json_out"}  # name a run and its output, not its work
RENAMED = {"batch_tokens": "max_batch_tokens"}  # an option's name where the library's differs


def _given(ctx: typer.Context) -> dict[str, object]:
    """The options the command line gave that decide a run's work or how it runs, under the library's names."""
    given = (n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE")
    return {RENAMED.get(n, n): ctx.params[n] for n in given if n not in NAMING}


def _resume_target(run_id: str | None, resume: bool, resume_id: str | None) -> str | None:
    """The run id, from --run-id or from --resume RUN_ID (a bare id makes sense only after --resume)."""
    if resume_id is not None:
        if not resume:
            raise OptionError(f"unexpected argument '{resume_id}': to continue that run, use --resume {resume_id}")
        if run_id is not None and run_id != resume_id:
            raise OptionError(f"--resume {resume_id} and --run-id {run_id} name different runs; give one")
        return resume_id
    if resume and run_id is None:
        raise OptionError("--resume needs the run to continue: --resume RUN_ID (its folder name under the output dir)")
    return run_id
