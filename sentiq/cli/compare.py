"""`sentiq compare`: saved runs ranked through the API, the table and the files it wrote shown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentiq.choices import METRICS
from sentiq.cli import options as o
from sentiq.cli import render
from sentiq.cli.guard import guarded


@guarded
def compare(
    results_dir: o.ResultsDir = Path("results"),
    metric: Annotated[str, typer.Option(**o.choice(METRICS), help="Rank by this metric.")] = "macro_f1",
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write a self-contained HTML report (table, accuracy-vs-speed chart, every run) to this file.",
        ),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Also save comparison.csv and comparison.png (accuracy against speed) in --results-dir."
        ),
    ] = False,
    json_out: o.Json = False,
) -> None:
    """Rank saved runs (models x methods) in one table; nothing is written unless asked (--write, --html)."""
    from sentiq.api import compare as run_compare

    result = run_compare(results_dir, metric, write=write, html=html)
    render.compared(result, json_out)
