"""The `sentiq` command: options in, one library call, results rendered. No torch at import time."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer

from sentiq import __version__
from sentiq.cli import render
from sentiq.cli.options import (
    DATA,
    METHOD,
    MODEL,
    SCALE,
    TUNE_N,
    TUNE_SAMPLES,
    Method,
    Opt,
    build,
    of,
    parse_grid,
    plain,
    takes,
)
from sentiq.errors import Interrupted, OptionError, OutputClosed, SentiqError, debugging
from sentiq.settings import (
    ClassifySettings,
    DataSpec,
    EvalSettings,
    MethodConfig,
    ModelSettings,
    PromptTuneSettings,
    RaySettings,
    method_names,
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
OUTPUT_CLOSED = 141  # 128 + SIGPIPE


def guarded(func: F) -> F:
    """Errors a user can cause end as one line and exit 1; Ctrl-C/SIGTERM exit 130 with what was kept;
    library warnings shown as warnings; tracebacks only with SENTIQ_DEBUG=1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = debugging()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        warnings = render.WarningHandler()
        logging.getLogger("sentiq").addHandler(warnings)
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except (OutputClosed, BrokenPipeError) as exc:  # `| head`: stop quietly, as Unix tools do
            _silence_stdout()
            if isinstance(exc, OutputClosed) and str(exc):  # what an --output keeps
                render.error(f"standard output was closed; {exc}")
            raise typer.Exit(OUTPUT_CLOSED) from None
        except (Interrupted, KeyboardInterrupt) as exc:
            render.error(str(exc) if isinstance(exc, Interrupted) else "interrupted")
            raise typer.Exit(INTERRUPTED) from None
        except SentiqError as exc:
            if debug:
                raise
            render.error(str(exc))
            raise typer.Exit(1) from None
        except Exception as exc:
            if debug:
                raise
            render.error(f"{type(exc).__name__}: {exc} (set SENTIQ_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None
        finally:
            logging.getLogger("sentiq").removeHandler(warnings)
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit meets no closed pipe either."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


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


@app.command()
@guarded
@takes(
    *MODEL,
    *METHOD,
    *SCALE,
    "seed",
    "tuned",
    "results_dir",
    "text_column",
    "json_out",
    texts=Opt(
        list[str] | None, None, typer.Argument(help="Texts to label; '-' or piped input reads lines from stdin.")
    ),
    input=plain(
        Path | None,
        None,
        "--input",
        "-i",
        help="A .txt (one text per line), .csv, .tsv, .jsonl, .json or .parquet file, or a folder of them.",
    ),
    output=of(
        ClassifySettings,
        "output",
        "--output",
        help="Write the labels to this .csv, .tsv, .jsonl or .parquet file as they are made.",
    ),
    keep_columns=of(
        ClassifySettings, "keep_columns", help="Input columns to copy into the output, comma-separated (id always)."
    ),
    chunk_size=of(
        ClassifySettings, "chunk_size", min=1, help="Texts read, sorted and batched at a time (memory grows with it)."
    ),
    resume=of(
        ClassifySettings,
        "resume",
        "--resume",
        help="Continue an interrupted --output: skip the ids it holds (a finished one is left as it is).",
    ),
    overwrite=of(ClassifySettings, "overwrite", "--overwrite", help="Replace an --output that already holds labels."),
    method=of(MethodConfig, "method", choices=Method, help="How to classify."),
)
def classify(**given: Any) -> None:
    """Label texts as positive or negative."""
    from sentiq.api import classify_file

    settings = build(ClassifySettings, given)
    model, method, scale = build(ModelSettings, given), build(MethodConfig, given), build(RaySettings, given)
    common = dict(model=model, method=method, tuned=given["tuned"], results_dir=given["results_dir"])
    kept = dict(text_column=settings.text_column, keep_columns=settings.keep_columns, chunk_size=settings.chunk_size)
    kept |= dict(resume=settings.resume, overwrite=settings.overwrite)
    if scale.engine == "ray":
        render.classified(classify_file(given["input"], settings.output, **common, **kept, scale=scale), None)
        return
    items = gather_texts(given["texts"] or [], sys.stdin if given["input"] is None else None)
    shown: list[dict[str, Any]] | None = None if given["json_out"] or settings.output else []
    emit = _print_rows if given["json_out"] else (shown.extend if shown is not None else None)
    with render.progress() as start_task:

        def start(description: str, total: int | None) -> Any:  # a bar for an output or 20 texts and more
            quick = settings.output is None and total is not None and total < 20
            return (lambda n, words=0: None) if quick else start_task(description, total)

        summary = classify_file(
            given["input"] or items, settings.output, **common, **kept, on_rows=emit, progress=start
        )
    render.classified(summary, shown)


def gather_texts(args: Sequence[str], stdin: TextIO | None) -> list[tuple[str, str]]:
    """(id, text) pairs from arguments and from stdin ('-', or piped when there are no arguments).
    Every line of stdin is a text, as in a .txt file: a blank line is an empty text, reported."""
    items: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        if arg == "-" and stdin is not None:
            items += _lines(stdin)
        elif arg != "-":
            items.append((str(i), arg))
    if not args and stdin is not None and not stdin.isatty():
        items += _lines(stdin)
    return items


def _lines(stdin: TextIO) -> list[tuple[str, str]]:
    return [(f"stdin:{j}", line) for j, line in enumerate(stdin.read().splitlines())]


def _print_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        render.print_json(row)


@app.command()
@guarded
@takes(
    *DATA,
    "seed",
    *MODEL,
    *METHOD,
    *SCALE,
    "tuned",
    "output_dir",
    "json_out",
    methods=Opt(
        list[str],
        [MethodConfig().method],
        typer.Option("--method", help="loglik, zero-shot, k-shot, sampling or all; repeat for several."),
    ),
    n=of(EvalSettings, "n", help="Balanced sample size (half per label).", rich_help_panel="Data"),
    run_id=of(
        EvalSettings, "run_id", help="Name of the run folder. \\[default: time-model-method]", show_default=False
    ),
    resume=of(
        EvalSettings,
        "resume",
        "--resume",
        help="Continue an interrupted run: --resume RUN_ID (or --run-id RUN_ID --resume), with the same options.",
    ),
    resume_id=Opt(str | None, None, typer.Argument(metavar="RUN_ID", hidden=True, show_default=False)),
)
def evaluate(**given: Any) -> None:
    """Measure methods on a balanced labelled sample and save the run under results/."""
    from sentiq.api import evaluate as run_evaluate

    names = method_names(given["methods"])
    run_id = _resume_target(given["run_id"], given["resume"], given["resume_id"])
    scale = build(RaySettings, given)
    with render.progress(enabled=not given["json_out"] and scale.engine == "local") as start_task:
        evaluation = run_evaluate(
            build(ModelSettings, given),
            [build(MethodConfig, given, method=name) for name in names],
            dataset=build(DataSpec, given),
            n=given["n"],
            seed=given["seed"],
            tuned=given["tuned"],
            results_dir=given["output_dir"],
            output_dir=given["output_dir"],
            run_id=run_id,
            resume=given["resume"],
            scale=scale,
            progress=start_task,
        )
    render.evaluated(evaluation.runs, given["json_out"])


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


@app.command("tune-sampling")
@guarded
@takes(
    *MODEL,
    "prompt",
    "seed",
    "output_dir",
    "json_out",
    temperatures=plain(
        str | None, None, help="Comma-separated temperatures. \\[default: 0.1,0.2,0.4,0.6,0.8,1.0]", show_default=False
    ),
    top_ks=plain(
        str | None,
        None,
        "--top-ks",
        help="Comma-separated top-k values. \\[default: 1000,800,600,400,200,100,10,5,2]",
        show_default=False,
    ),
    n=TUNE_N,
    samples=TUNE_SAMPLES,
)
def tune_sampling(**given: Any) -> None:
    """Search temperature x top-k for the sampling method; evaluate --tuned uses the winner."""
    from sentiq.api import tune_sampling as run_tune
    from sentiq.settings import TEMPERATURES, TOP_KS

    grid = dict(
        temperatures=parse_grid(given["temperatures"], float, TEMPERATURES, "--temperatures"),
        top_ks=parse_grid(given["top_ks"], int, TOP_KS, "--top-ks"),
    )
    asked = {k: given[k] for k in ("n", "samples", "prompt", "seed")}
    with render.progress(enabled=not given["json_out"]) as start_task:
        result = run_tune(
            build(ModelSettings, given), output_dir=given["output_dir"], progress=start_task, **grid, **asked
        )
    render.tuned(result, given["json_out"])


@app.command("tune-prompt")
@guarded
@takes(
    *MODEL,
    "seed",
    "output_dir",
    "json_out",
    prompts=of(
        PromptTuneSettings,
        "prompts",
        "--prompts",
        help="Comma-separated candidates (names, NAME:VARIANT or .toml files). \\[default: every built-in prompt "
        "and label-word variant]",
        show_default=False,
    ),
    n=of(PromptTuneSettings, "n", min=2, help="Tuning texts, balanced, from the 1,000 embedded tuning reviews."),
    ensemble=of(PromptTuneSettings, "ensemble", min=0, help="Also try the mean of the best 2..N prompts."),
    max_tokens=of(PromptTuneSettings, "max_tokens", "--max-tokens", min=16, help="Longest text in tokens."),
    tail=of(
        PromptTuneSettings,
        "tail",
        min=0,
        help="Also try every cell with each text's last N words scored beside it (0: not).",
    ),
    k=of(
        PromptTuneSettings,
        "k",
        min=0,
        help="Score with K demonstrations per class (as k-shot --scoring loglik): a choice that --tuned uses for "
        "k-shot, demonstrations included. 0: without.",
    ),
    draws=of(
        PromptTuneSettings,
        "draws",
        min=1,
        help="With --k: try this many demonstration sets (drawn with seeds --seed, --seed + 1, ...) and choose "
        "among them too.",
    ),
)
def tune_prompt(**given: Any) -> None:
    """Choose the prompt, label words, calibration and ending for a model by loglik accuracy; --tuned uses them."""
    from sentiq.api import tune_prompt as run_tune

    settings = {k: v for k, v in vars(build(PromptTuneSettings, given)).items() if k != "output_dir"}
    with render.progress(enabled=not given["json_out"]) as start_task:
        result = run_tune(build(ModelSettings, given), output_dir=given["output_dir"], progress=start_task, **settings)
    render.tuned(result, given["json_out"])


@app.command()
@guarded
@takes(
    "results_dir",
    "json_out",
    metric=plain(str, "macro_f1", help="Rank by macro_f1, accuracy or words_per_s."),
    html=plain(
        Path | None,
        None,
        "--html",
        help="Also write a self-contained HTML report (table, accuracy-vs-speed chart, every run) to this file.",
    ),
)
def compare(**given: Any) -> None:
    """Rank saved runs (models x methods) in one table."""
    from sentiq.api import compare as run_compare

    result = run_compare(given["results_dir"], given["metric"], write=True, html=given["html"])
    render.compared(result, given["json_out"])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
