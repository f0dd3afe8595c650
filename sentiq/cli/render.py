"""Everything the tool shows a person: results (as tables or JSON), progress bars, notes and errors."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from sentiq.cli.tables import (
    WIDE,
    agreement_table,
    comparison_table,
    grid_table,
    metrics_table,
    predictions_table,
)
from sentiq.errors import listed
from sentiq.progress import no_progress
from sentiq.text import plural, prior_text

if TYPE_CHECKING:
    from sentiq.api import Comparison, PromptChoice, RunResult, SamplingChoice, Summary, TuneResult

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """One line on stderr; the caller exits non-zero."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def note(message: str) -> None:
    err.print(f"[dim]{escape(message)}[/]", soft_wrap=True)


class WarningHandler(logging.Handler):
    """Library warnings (a halved batch budget, a repaired file) shown as the tool's own warnings."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


class _Rates(ProgressColumn):
    """Texts and words labelled per second of inference, as every table and summary counts them (texts
    skipped on a resume, reading and writing do not count): a finished bar keeps its figure."""

    def __init__(self, texts: bool = True) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.texts = texts  # texts/s too (words/s, the unit of throughput, always)

    def render(self, task: Any) -> Text:
        seconds = task.fields.get("seconds", 0.0)
        if seconds <= 0 or not task.fields.get("labelled"):
            return Text("")
        texts, words = task.fields["labelled"] / seconds, task.fields["words"] / seconds
        shown = f"{texts:,.1f} texts/s  {words:,.0f} words/s" if self.texts else f"{words:,.0f} words/s"
        return Text(shown, style="cyan")


WIDE_BAR = 100  # columns from which the bar shows texts/s and the elapsed time too


def _columns(width: int) -> list[ProgressColumn]:
    """The bar's columns for a terminal `width` wide, on one line: at 80 columns the description is cut
    with '…', texts/s and the elapsed time are left out, and the bar takes what is left."""
    wide = width >= WIDE_BAR
    description = Column(no_wrap=True, overflow="ellipsis", max_width=None if wide else 24)
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}", table_column=description),
        BarColumn(bar_width=None if not wide else 40, table_column=Column(ratio=1, min_width=8)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        _Rates(texts=wide),
    ]
    if wide:
        columns.append(TimeElapsedColumn(table_column=Column(no_wrap=True)))
    return [*columns, TimeRemainingColumn(table_column=Column(no_wrap=True))]


@contextmanager
def progress(enabled: bool = True) -> Iterator[Any]:
    """Yields start_task(description, total) -> advance(texts, words=0, seconds=0.0); a bar on stderr per task
    (total None: the input's size is unknown, so no ETA)."""
    if not enabled:
        yield no_progress
        return
    bar = Progress(*_columns(err.width), console=err, transient=False, expand=err.width < WIDE_BAR)

    def start_task(description: str, total: int | None) -> Any:
        if not bar.live.is_started:  # shown from the first task on: errors before it stay one line
            bar.start()
        task = bar.add_task(description, total=total, labelled=0, words=0, seconds=0.0)

        def advance(n: int, words: int = 0, seconds: float = 0.0) -> None:
            fields = bar.tasks[task].fields
            labelled = fields["labelled"] + (n if words else 0)
            bar.update(
                task, advance=n, labelled=labelled, words=fields["words"] + words, seconds=fields["seconds"] + seconds
            )

        return advance

    try:
        yield start_task
    finally:
        if bar.live.is_started:
            bar.stop()


def classified(summary: Summary, rows: Sequence[dict[str, Any]] | None) -> None:
    """classify's labels as a table (when they were not streamed elsewhere), then what went wrong."""
    if rows is not None:
        out.print(predictions_table(rows, out.width))  # in the input's order, as every output
    if summary.already_complete:
        note(f"{summary.output} was already complete ({summary.skipped} labels); nothing changed")
    elif summary.output is not None:
        resumed = f", {summary.skipped} of them already there" if summary.skipped else ""
        rate = f", {summary.words / summary.seconds:,.0f} words/s of inference" if summary.seconds else ""
        note(f"saved {plural(summary.texts + summary.skipped, 'label')} in {summary.output}{resumed}{rate}")
    if summary.tuned:
        note(f"--tuned applied {summary.tuned}")
    if summary.calibration:
        c = summary.calibration
        note(f"{c.mode} calibration: prior {prior_text(c.prior)}, from {c.estimated_on}")
    if summary.exits:
        total = sum(summary.exits.values())
        shares = " · ".join(f"{k} {100 * v / total:.0f}%" for k, v in summary.exits.items())
        note(f"texts per exit (layer): {shares}")
    if summary.uncertain:
        note(f"{plural(summary.uncertain, 'text')} labelled uncertain: below the confidence asked for")
    if summary.truncated:
        warn(f"{plural(summary.truncated, 'text')} longer than --max-tokens lost their middle")
    if summary.empty:
        count = len(summary.empty)
        warn(f"skipped {plural(count, 'empty text')}: {listed(summary.empty)}")


def evaluated(results: Sequence[RunResult], as_json: bool) -> None:
    if as_json:
        print_json([_result_json(r) for r in results])
        return
    out.print(metrics_table(results))
    for r in results:
        if r.config.get("tuned"):
            note(f"{r.method.method}: --tuned applied {r.config['tuned']}")
        if r.config.get("tuning_texts_left_out"):
            left = plural(r.config["tuning_texts_left_out"], "text")
            note(f"{r.method.method}: left out {left} the tuned choice was searched on")
        if r.config.get("fitted_texts_left_out"):
            left = plural(r.config["fitted_texts_left_out"], "text")
            note(f"{r.method.method}: left out {left} the fit was fitted on")
        if r.already_complete:
            note(f"{r.run_id} was already complete; nothing changed")
        elif r.truncated:
            warn(f"{r.method.method}: {plural(r.truncated, 'text')} longer than --max-tokens lost their middle")
        note(f"saved {r.folder}")


def _result_json(r: RunResult) -> dict[str, Any]:
    """One evaluated run for --json: where it is, its settings and its metrics."""
    return {
        "run_id": r.run_id,
        "folder": str(r.folder),
        "already_complete": r.already_complete,
        **r.config,
        "metrics": {**vars(r.quality), **vars(r.speed)},
    }


def tuned(result: TuneResult, as_json: bool) -> None:
    if as_json:
        print_json({"best": result.best, "grid": result.grid.to_dict(orient="records"), "folder": str(result.folder)})
        return
    from sentiq.api import SamplingChoice

    choice = result.choice
    if isinstance(choice, SamplingChoice):
        _sampling_choice(result, choice)
    else:
        _prompt_choice(result, choice)
    extra = ", generation.csv" if "generation" in result.best else ""
    note(f"saved {result.folder} (grid.csv{extra}, heatmap.png, best.json, split.csv)")


def _prompt_choice(result: TuneResult, b: PromptChoice) -> None:
    grid = result.grid.assign(prompt=result.cell_names())
    chosen = (result.chosen_name(b), b.calibrate)
    scoring = f"k-shot k={b.k} loglik" if b.k else "loglik"
    c, said = b.criterion, b.criterion.replace("_", " ")
    out.print(grid_table(grid, "prompt", "calibrate", c, chosen, f"{scoring} {said}"))
    base = f"; {b.baseline[0]} uncalibrated: {b.baseline[1]:.3f}" if b.baseline else ""
    out.print(
        f"chosen: prompt {chosen[0]}, calibration {b.calibrate} ({said} {b.score:.3f}, "
        f"macro-F1 {b.macro_f1:.3f}, n={b.n}{base})"
    )
    if b.score < b.top:
        note(f"the simplest cell within one standard error of the top {said} ({b.top:.3f})")
    g = b.generation  # none when no candidate's label words start apart
    if g is not None:
        out.print(
            f"for methods that generate (decided by the first answer token): prompt "
            f"{result.chosen_name(g)}, calibration {g.calibrate} ({said} {g.score:.3f}; top {g.top:.3f})"
        )


def _sampling_choice(result: TuneResult, b: SamplingChoice) -> None:
    grid = result.grid.sort_values(["temperature", "top_k"])
    chosen = (b.temperature, b.top_k)
    out.print(grid_table(grid, "temperature", "top_k", "macro_f1", chosen, "sampling macro-F1", "top-k"))
    out.print(
        f"chosen: temperature {b.temperature:g}, top-k {b.top_k} with prompt {b.prompt} "
        f"(macro-F1 {b.macro_f1:.3f}, accuracy {b.accuracy:.3f}, invalid {b.invalid}, n={b.n})"
    )
    if 2 * b.invalid > b.n:
        warn(
            f"the chosen cell answered invalid on {b.invalid} of {b.n} texts: the prompt's label words are "
            "seldom what this model answers; try another prompt (tune-prompt) before sampling"
        )


def compared(result: Comparison, as_json: bool) -> None:
    if as_json:
        print_json(result.as_json())
        return
    out.print(comparison_table(result.table, out.width))
    if out.width < WIDE:
        for i, run_id in enumerate(result.table["run_id"], start=1):
            out.print(f"#{i} {run_id}", soft_wrap=True)
    for message in result.warnings:
        warn(message)
    for sample, matrix in result.agreement.items():
        title = f"agreement on the same reviews ({sample})"
        table = result.named(matrix)
        need = max(map(len, table.index)) + 4 + 7 * len(table.columns)  # names, then '0.95' and borders a run
        if need > out.width:  # a column per run does not fit
            note(f"{title}: {len(table)} runs, too many columns for {out.width}; see --json or --html")
        else:
            out.print(agreement_table(table, title))
    if result.files:
        note("saved " + ", ".join(str(f) for f in result.files))
