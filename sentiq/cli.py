"""The `sentiq` command: options in, one library call, results rendered. No torch at import time."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from sentiq import __version__, render
from sentiq.errors import SentiqError
from sentiq.options import (
    BatchSizeOpt,
    BatchTokensOpt,
    CalibrateOpt,
    DatasetOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    KOpt,
    LabelColumnOpt,
    LabelMapOpt,
    MaxTokensOpt,
    Method,
    ModelOpt,
    OutputDirOpt,
    ResultsDirOpt,
    SamplesOpt,
    Scoring,
    ScoringOpt,
    SeedOpt,
    SplitOpt,
    TemperatureOpt,
    TextColumnOpt,
    TopKOpt,
    TopPOpt,
    TunedOpt,
)

app = typer.Typer(
    name="sentiq",
    help="Sentiment classification with small instruction-tuned LLMs (Qwen2.5), no training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
F = TypeVar("F", bound=Callable[..., Any])
INTERRUPTED = 130


def guarded(func: F) -> F:
    """Errors a user can cause end as one line and exit 1; Ctrl-C/SIGTERM exit 130; tracebacks only
    with SENTIQ_DEBUG=1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = os.environ.get("SENTIQ_DEBUG", "") not in ("", "0")
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SentiqError as exc:
            if debug:
                raise
            render.error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            render.error("interrupted; predictions made so far are saved (evaluate --resume continues the run)")
            raise typer.Exit(INTERRUPTED) from None
        except Exception as exc:
            if debug:
                raise
            render.error(f"{type(exc).__name__}: {exc} (set SENTIQ_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sentiq {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Label texts as positive or negative with Qwen2.5 Instruct models: classify, evaluate, tune, compare."""


METHOD_OPTIONS = ("k", "scoring", "calibrate", "temperature", "top_k", "top_p", "samples", "max_tokens", "seed")


def _method_configs(names: list[str], options: dict[str, Any]) -> list[Any]:
    """One MethodConfig per method name from a command's method options (its locals())."""
    from sentiq.methods import MethodConfig

    kwargs = {name: options[name] for name in METHOD_OPTIONS}
    kwargs["scoring"] = kwargs["scoring"].value
    return [MethodConfig(method=name, **kwargs) for name in names]


@app.command()
@guarded
def classify(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to label; '-' or piped input reads lines from stdin.")
    ] = None,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="A .txt (one text per line), .csv, .jsonl or .parquet file.")
    ] = None,
    text_column: TextColumnOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the predictions to this .csv or .jsonl file.")
    ] = None,
    method: Annotated[Method, typer.Option(help="How to classify.")] = Method.loglik,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",  # type: ignore[assignment]
    dtype: DtypeOpt = "auto",  # type: ignore[assignment]
    batch_size: BatchSizeOpt = None,
    batch_tokens: BatchTokensOpt = None,
    k: KOpt = 2,
    scoring: ScoringOpt = Scoring.generate,
    calibrate: CalibrateOpt = False,
    temperature: TemperatureOpt = 0.7,
    top_k: TopKOpt = 20,
    top_p: TopPOpt = None,
    samples: SamplesOpt = 5,
    tuned: TunedOpt = False,
    max_tokens: MaxTokensOpt = 4096,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Label texts as positive or negative."""
    from sentiq.classify import classify_texts, gather_texts

    items = gather_texts(texts or [], input, text_column, stdin=sys.stdin)
    (cfg,) = _method_configs([method.value], locals())
    from sentiq.evaluation import ModelSettings

    settings = ModelSettings(model, device.value, dtype.value, batch_size, batch_tokens)
    with render.progress(enabled=len(items) >= 20) as start_task:
        outcome = classify_texts(items, settings, cfg, tuned, start_task, output)
    if json_out:
        for row in outcome.rows():
            render.print_json(row)
    else:
        render.out.print(render.predictions_table(outcome.ids, outcome.texts, outcome.predictions))
    truncated = sum(p.truncated for p in outcome.predictions)
    if truncated:
        render.warn(f"{truncated} texts were longer than --max-tokens and lost their middle")
    for message in outcome.problems:
        render.error(message)
    if outcome.problems:
        raise typer.Exit(1)


@app.command()
@guarded
def evaluate(
    method: Annotated[
        list[str], typer.Option(help="loglik, zero-shot, k-shot, sampling or all; repeat for several.")
    ] = ["loglik"],  # noqa: B006
    dataset: DatasetOpt = "imdb-sample",
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = "label",
    label_map: LabelMapOpt = None,
    split: SplitOpt = None,
    n: Annotated[
        int | None, typer.Option(help="Balanced sample size (half per label). [default: 200]", show_default=False)
    ] = 200,
    seed: SeedOpt = 0,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",  # type: ignore[assignment]
    dtype: DtypeOpt = "auto",  # type: ignore[assignment]
    batch_size: BatchSizeOpt = None,
    batch_tokens: BatchTokensOpt = None,
    k: KOpt = 2,
    scoring: ScoringOpt = Scoring.generate,
    calibrate: CalibrateOpt = False,
    temperature: TemperatureOpt = 0.7,
    top_k: TopKOpt = 20,
    top_p: TopPOpt = None,
    samples: SamplesOpt = 5,
    tuned: TunedOpt = False,
    max_tokens: MaxTokensOpt = 4096,
    output_dir: OutputDirOpt = Path("results"),
    run_id: Annotated[
        str | None, typer.Option(help="Name of the run folder. [default: time-model-method]", show_default=False)
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run named by --run-id.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure methods on a balanced labelled sample and save the run under results/."""
    from sentiq.data import DataSpec
    from sentiq.errors import OptionError
    from sentiq.evaluation import EvalSettings, ModelSettings
    from sentiq.evaluation import evaluate as run_evaluate
    from sentiq.methods import METHODS
    from sentiq.tuning import apply_tuned

    names = list(METHODS) if "all" in method else list(dict.fromkeys(method))
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], [*METHODS, "all"], n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise OptionError(f"unknown method '{unknown[0]}': choose from {', '.join(METHODS)} or all.{hint}")
    if resume and run_id is None:
        raise OptionError("--resume needs --run-id: the run to continue (its folder name under the output dir)")
    configs = _method_configs(names, locals())
    settings = EvalSettings(
        model=ModelSettings(model, device.value, dtype.value, batch_size, batch_tokens),
        data=DataSpec(dataset, text_column, label_column, label_map, split),
        methods=configs,
        n=n,
        seed=seed,
        output_dir=output_dir,
        run_id=run_id,
        resume=resume,
    )
    with render.progress(enabled=not json_out) as start_task:
        if tuned:
            settings.methods = apply_tuned(settings.methods, settings.model.model, output_dir)
        results = run_evaluate(settings, start_task)
    if json_out:
        render.print_json(
            [
                {
                    "run_id": r.run_id,
                    "folder": str(r.folder),
                    **r.config,
                    "metrics": {**vars(r.quality), **vars(r.speed)},
                }
                for r in results
            ]
        )
        return
    render.out.print(render.metrics_table(results))
    for r in results:
        if r.truncated:
            render.warn(f"{r.method.method}: {r.truncated} texts were longer than --max-tokens and lost their middle")
        render.note(f"saved {r.folder}")


@app.command("tune-sampling")
@guarded
def tune_sampling(
    model: ModelOpt = None,
    device: DeviceOpt = "auto",  # type: ignore[assignment]
    dtype: DtypeOpt = "auto",  # type: ignore[assignment]
    batch_size: BatchSizeOpt = None,
    batch_tokens: BatchTokensOpt = None,
    temperatures: Annotated[
        str | None,
        typer.Option(help="Comma-separated temperatures. [default: 0.1,0.2,0.4,0.6,0.8,1.0]", show_default=False),
    ] = None,
    top_ks: Annotated[
        str | None,
        typer.Option(
            "--top-ks",
            help="Comma-separated top-k values. [default: 1000,800,600,400,200,100,10,5,2]",
            show_default=False,
        ),
    ] = None,
    n: Annotated[int, typer.Option(min=2, help="Tuning texts, balanced, from the train pool.")] = 40,
    samples: Annotated[int, typer.Option(min=1, help="Answers per text, majority vote.")] = 1,
    seed: SeedOpt = 0,
    output_dir: OutputDirOpt = Path("results"),
    json_out: JsonOpt = False,
) -> None:
    """Search temperature x top-k for the sampling method; evaluate --tuned uses the winner."""
    from sentiq.evaluation import ModelSettings
    from sentiq.tuning import TEMPERATURES, TOP_KS, TuneSettings, parse_grid, tune

    settings = TuneSettings(
        temperatures=parse_grid(temperatures, float, TEMPERATURES, "--temperatures"),
        top_ks=parse_grid(top_ks, int, TOP_KS, "--top-ks"),
        n=n,
        samples=samples,
        seed=seed,
        output_dir=output_dir,
    )
    with render.progress(enabled=not json_out) as start_task:
        result = tune(ModelSettings(model, device.value, dtype.value, batch_size, batch_tokens), settings, start_task)
    if json_out:
        render.print_json(
            {"best": result.best, "grid": result.grid.to_dict(orient="records"), "folder": str(result.folder)}
        )
        return
    render.out.print(render.grid_table(result.grid, result.best))
    b = result.best
    render.out.print(
        f"chosen: temperature {b['temperature']:g}, top-k {b['top_k']} "
        f"(macro-F1 {b['macro_f1']:.3f}, accuracy {b['accuracy']:.3f}, invalid {b['invalid']}, n={b['n']})"
    )
    render.note(f"saved {result.folder} (grid.csv, heatmap.png, best.json)")


@app.command()
@guarded
def compare(
    results_dir: ResultsDirOpt = Path("results"),
    metric: Annotated[str, typer.Option(help="Rank by macro_f1, accuracy or words_per_s.")] = "macro_f1",
    json_out: JsonOpt = False,
) -> None:
    """Rank saved runs (models x methods) in one table."""
    from sentiq.compare import as_json
    from sentiq.compare import compare as run_compare

    result = run_compare(results_dir, metric)
    if json_out:
        render.print_json(as_json(result))
        return
    render.out.print(render.comparison_table(result.table))
    for warning in result.warnings:
        render.warn(warning)
    for sample, matrix in result.agreement.items():
        render.out.print(render.agreement_table(matrix, f"agreement on the same reviews ({sample})"))
    render.note("saved " + ", ".join(str(f) for f in result.files))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
