"""`sentiq classify`: texts from arguments, stdin or --input, labelled through the API and shown or written."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from sentiq.cli import groups as g
from sentiq.cli import method_options as m
from sentiq.cli import options as o
from sentiq.cli import render
from sentiq.cli.guard import guarded
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings


@guarded
@g.grouped
def classify(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to label; '-' or piped input reads lines from stdin.")
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            rich_help_panel=o.IO_PANEL,
            help="A .txt (one text per line), .csv, .tsv, .jsonl, .json or .parquet file, or a folder of them.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            rich_help_panel=o.IO_PANEL,
            help="Write the labels to this .csv, .tsv, .jsonl or .parquet file as they are made.",
        ),
    ] = ClassifySettings.output,
    text_column: o.TextColumn = ClassifySettings.text_column,
    keep_columns: Annotated[
        str,
        typer.Option(
            rich_help_panel=o.IO_PANEL, help="Input columns to copy into the output, comma-separated (id always)."
        ),
    ] = ClassifySettings.keep_columns,
    chunk_size: Annotated[
        int,
        typer.Option(
            min=1, rich_help_panel=o.IO_PANEL, help="Texts read, sorted and batched at a time (memory grows with it)."
        ),
    ] = ClassifySettings.chunk_size,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            rich_help_panel=o.IO_PANEL,
            help="Continue an interrupted --output: skip the ids it holds (a finished one is left as it is).",
        ),
    ] = ClassifySettings.resume,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", rich_help_panel=o.IO_PANEL, help="Replace an --output that already holds labels."),
    ] = ClassifySettings.overwrite,
    method: m.Method = MethodConfig.method,
    models: ModelSettings = g.MODEL,
    method_options: g.MethodOptions = g.METHOD,
    seed: o.MethodSeed = MethodConfig.seed,
    tuning: dict = g.TUNED,
    scale: RaySettings = g.RAY,
    json_out: o.Json = False,
) -> None:
    """Label texts: positive or negative, or the labels the prompt declares."""
    from sentiq.api import classify_stream

    asked = dict(model=models, method=method_options.config(method, seed), **tuning, text_column=text_column)
    asked |= dict(keep_columns=keep_columns, chunk_size=chunk_size, resume=resume, overwrite=overwrite)
    items = gather_texts(texts or [], sys.stdin if input is None else None)
    stream = classify_stream(input or items, output, **asked, scale=scale)
    shown: list[dict[str, Any]] | None = None if json_out or output else []
    quick = output is None and stream.total is not None and stream.total < 20  # a bar for an output or 20 texts
    with render.progress(enabled=stream.progress and not quick) as start_task, stream:
        advance = start_task(stream.title, stream.total)
        for step in stream:
            advance(step.done, step.words, step.seconds)
            if json_out:
                _print_rows(step.rows)
            elif shown is not None:
                shown += step.rows
    render.classified(stream.summary, shown)


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


def _print_rows(rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        render.print_json(row)
