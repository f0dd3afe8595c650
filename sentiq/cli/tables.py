"""The Rich tables the commands print: a run's metrics, classify's labels, tuning grids, the ranking and
the agreement between runs; each keeps numbers and ids whole at any terminal width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from sentiq.api import RunResult


def _pct(x: float) -> str:
    return f"{x:.3f}"


def metrics_table(results: Sequence[RunResult]) -> Table:
    """Metrics as rows and one column per method run, so four methods fit an 80-column terminal."""
    table = Table(title="sentiq evaluate", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("metric")
    for r in results:
        table.add_column(r.config.get("method_title", r.method.method), justify="right")
    labels = list(results[0].quality.per_label or {}) if results else []
    binary = results and results[0].quality.precision_positive is not None
    per_label: list[tuple[str, Any]] = (
        [
            ("precision pos / neg", lambda q, s: f"{_pct(q.precision_positive)} / {_pct(q.precision_negative)}"),
            ("recall pos / neg", lambda q, s: f"{_pct(q.recall_positive)} / {_pct(q.recall_negative)}"),
            ("F1 pos / neg", lambda q, s: f"{_pct(q.f1_positive)} / {_pct(q.f1_negative)}"),
        ]
        if binary
        else [(f"P / R / F1 {lab}", _label_cell(lab)) for lab in labels]
    )
    rows: list[tuple[str, Any]] = [
        ("n", lambda q, s: str(q.n)),
        ("accuracy", lambda q, s: _pct(q.accuracy)),
        *per_label,
        ("macro P / R", _macro(lambda q: f"{_pct(q.macro_precision)} / {_pct(q.macro_recall)}")),
        ("macro F1", _macro(lambda q: _pct(q.macro_f1))),
        *(
            [
                ("MAE (steps)", lambda q, s: _pct(q.mae) if q.mae is not None else "-"),
                ("within one step", lambda q, s: _pct(q.within_one)),
                ("quadratic kappa", lambda q, s: _pct(q.qwk) if q.qwk is not None else "-"),
            ]
            if results and results[0].quality.within_one is not None
            else []
        ),
        ("invalid", lambda q, s: f"{q.invalid} ({100 * (1 - q.coverage):.1f}%)"),
        (
            "scored",  # texts with a probability
            lambda q, s: f"{q.scored} ({100 * q.scored / q.n:.1f}%)" if q.n and q.scored is not None else "-",
        ),
        ("ECE / Brier", lambda q, s: f"{_num(q.ece)} / {_num(q.brier)}"),
        ("log loss", lambda q, s: _num(q.log_loss)),
        *([("AUROC", lambda q, s: _num(q.auroc))] if binary else []),
        ("AURC", lambda q, s: _num(q.aurc)),
        (
            "cov. 90/95/99%",  # the share answerable at each accuracy
            lambda q, s: "/".join(_num(x, 2) for x in (q.coverage_at_90, q.coverage_at_95, q.coverage_at_99)),
        ),
        *(
            [
                ("uncertain", lambda q, s: f"{q.uncertain} ({100 * q.uncertain / q.n:.1f}%)" if q.n else "0"),
                ("answered", lambda q, s: f"{100 * q.answered:.1f}%"),
                ("acc. answered", _selective),
            ]
            if results and results[0].quality.answered is not None
            else []
        ),
        ("words/s", lambda q, s: f"{s.words_per_s:,.0f}"),
        *(
            [("exits (layer:%)", _exits), ("layers per text", lambda q, s: _num(s.mean_layers, 1))]
            if any(r.speed.exit_shares for r in results)
            else []
        ),
        ("tokens/s", lambda q, s: f"{s.tokens_per_s:,.0f}"),
        ("latency p50 / p95 ms", lambda q, s: f"{s.latency_p50_ms:.1f} / {s.latency_p95_ms:.1f}"),
    ]
    table.add_row("prompt", *[escape(r.prompt_name) for r in results])
    for name, cell in rows:
        table.add_row(name, *[cell(r.quality, r.speed) for r in results])
    if any(r.quality.labels_in_sample == 1 for r in results):
        table.caption = "The sample holds texts of one label: no macro average over labels can be taken."
        table.caption_justify = "left"
    return table


def _selective(q: Any, s: Any) -> str:
    """The answered texts' accuracy with its Wilson interval (to two places: the column stays narrow)."""
    if q.selective_accuracy is None:
        return "-"
    low, high = q.selective_accuracy_interval
    return f"{_pct(q.selective_accuracy)} [{low:.2f}–{high:.2f}]"


def _exits(q: Any, s: Any) -> str:
    """Each exit's share of the texts: '6:41 12:30 24:29', a second model's layer as 'then28'."""
    shown = {k if ":" not in k else f"then{k.rsplit(':', 1)[1]}": v for k, v in (s.exit_shares or {}).items()}
    return " ".join(f"{k}:{100 * v:.0f}" for k, v in shown.items()) or "-"


def _num(x: float | None, places: int = 3) -> str:
    """A figure to `places` places, or '-' where a run has none (no text had a probability)."""
    return "-" if x is None or x != x else f"{x:.{places}f}"


def _macro(cell: Any) -> Any:
    """A macro average's cell; a sample of one label has none to show."""
    return lambda q, s: "one label" if q.labels_in_sample == 1 else cell(q)


def _label_cell(label: str) -> Any:
    def cell(q: Any, s: Any) -> str:
        m = (q.per_label or {}).get(label, {})
        return " / ".join(_pct(m[k]) for k in ("precision", "recall", "f1")) if m else "-"

    return cell


def predictions_table(rows: Sequence[dict[str, Any]], width: int) -> Table:
    """Ids, labels and probabilities whole at any width; the text takes the rest of the line, cut with '…'."""
    table = Table(title_justify="left")
    ids = [escape(str(row["id"])) for row in rows]
    id_width = max([len("#"), *map(len, ids)])
    table.add_column("#", justify="right", style="dim", no_wrap=True, min_width=id_width)
    table.add_column("label", no_wrap=True, min_width=len("negative"))
    binary = not rows or [k for k in rows[0] if k.startswith("p_")] == ["p_positive"]  # else p_<label> each
    table.add_column("P(positive)" if binary else "P(label)", justify="right", no_wrap=True)
    has_text = bool(rows) and "text" in rows[0]
    room = max(10, min(80, width - id_width - len("negative") - len("P(positive)") - 13))  # 13: borders, padding
    if has_text:
        table.add_column("text", no_wrap=True)
    colors = {"positive": "green", "negative": "red"}
    for row, text_id in zip(rows, ids):
        value = row["p_positive"] if binary else row.get(f"p_{row['label']}")
        prob = "" if value is None else f"{value:.3f}"
        label = f"[{colors.get(row['label'], 'yellow')}]{row['label']}[/]"
        text = " ".join(str(row["text"]).split()) if has_text else ""
        cut = [escape(text if len(text) <= room else text[: room - 1] + "…")] if has_text else []
        table.add_row(text_id, label, prob, *cut)
    return table


def grid_table(
    grid: Any, rows: str, columns: str, value: str, chosen: tuple[Any, Any], title: str, column_title: str = ""
) -> Table:
    """A tuning grid, `value` per rows x columns cell in the grid's own order; the chosen cell marked.
    Each column is headed `column_title` and its value ('top-k 5'); an ensemble's row name wraps between
    its members, never inside one."""
    table = Table(title=f"{title} (* chosen)", title_justify="left")
    names = {r: _cell_name(r).replace(",", ", ") for r in dict.fromkeys(grid[rows])}
    table.add_column(rows, overflow="fold", min_width=_longest_word(names.values()))
    column_values = list(dict.fromkeys(grid[columns]))
    for c in column_values:
        table.add_column(f"{column_title} {_cell_name(c)}".strip(), justify="right", no_wrap=True)
    for r, name in names.items():
        cells = []
        for c in column_values:
            cell = grid[(grid[rows] == r) & (grid[columns] == c)].iloc[0]
            text = f"{cell[value]:.3f}" + ("*" if (r, c) == chosen else "")
            cells.append(f"[bold green]{text}[/]" if (r, c) == chosen else text)
        table.add_row(escape(name), *cells)
    return table


def _cell_name(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _longest_word(values: Any) -> int:
    """The longest word among `values`: a column at least that wide wraps between words, never inside one."""
    return max((len(word) for v in values for word in str(v).split()), default=0)


WIDE = 160  # columns a terminal needs for compare's every column and whole run ids


def comparison_table(rows: pd.DataFrame, width: int) -> Table:
    """The ranking; below WIDE columns the prompt, dataset, n and invalid columns go, the method is named
    by its short name and run ids are listed under the table (whole: --resume needs them). Numbers and
    ids are never cut; names wrap."""
    wide = width >= WIDE
    family, shorts = short_models(list(rows["model"].astype(str)))
    names = dict(zip(rows["model"].astype(str), shorts))
    one_model = len(set(rows["model"].astype(str))) == 1 and not wide  # named once, in the title
    title = "sentiq compare" + (f" (models {family}…)" if family and not wide and not one_model else "")
    title += f" · {names[str(rows['model'].iloc[0])]}" if one_model else ""
    table = Table(title=title, title_justify="left")
    table.caption = "accuracy with its Wilson 95% interval; runs whose intervals overlap share a rank"
    columns = [
        "#",
        "rank",
        *([] if one_model else ["model"]),
        "method",
        *(["prompt", "dataset", "n"] if wide else []),
        "accuracy",
    ]
    columns += ["macro F1", "ECE", *(["cov@95%", "invalid"] if wide else []), "words/s"]
    columns += ["run id"] if wide else []
    model_names = [str(m) if wide else names[str(m)] for m in rows["model"].astype(str)]
    words = {"model": _longest_word(model_names), "method": _longest_word(rows["method" if wide else "method_name"])}
    for col in columns:
        text = col in ("model", "method", "prompt", "dataset")
        justify = "left" if text or col == "run id" else "right"
        table.add_column(col, justify=justify, overflow="fold", no_wrap=not text, min_width=words.get(col))
    for i, r in enumerate(rows.itertuples(), start=1):
        cells = {
            "#": str(i),
            "rank": str(r.rank),
            "model": str(r.model) if wide else names[str(r.model)],
            "method": str(r.method if wide else r.method_name),
            "prompt": escape(str(r.prompt)),
            "dataset": escape(str(r.dataset)),
            "n": str(r.n),
            "accuracy": f"{_pct(r.accuracy)} [dim]{_pct(r.acc_low)}–{_pct(r.acc_high)}[/]",
            "macro F1": "one label" if r.macro_f1 is None or r.macro_f1 != r.macro_f1 else _pct(r.macro_f1),
            "ECE": _num(getattr(r, "ece", None)),
            "cov@95%": _num(getattr(r, "coverage_at_95", None)),
            "invalid": str(r.invalid),
            "words/s": f"{r.words_per_s:,.0f}",
            "run id": str(r.run_id),
        }
        table.add_row(*[cells[c] for c in columns])
    return table


def short_models(labels: list[str]) -> tuple[str, list[str]]:
    """Model names without what they all share (the family prefix, e.g. 'qwen2.5-coder-', and
    '-instruct'): the shared part and each one's rest."""
    stems = [label.removesuffix("-instruct").removesuffix("-Instruct") for label in labels]
    parts = [stem.split("-") for stem in stems]
    shared = 0
    while len(set(stems)) > 1 and all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    family = "-".join(parts[0][:shared]) + "-" if shared else ""
    return family, ["-".join(p[shared:]) for p in parts]


def agreement_table(matrix: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for c in matrix.columns:
        table.add_column(str(c), justify="right")
    for name, row in matrix.iterrows():
        table.add_row(str(name), *[f"{v:.2f}" for v in row])
    return table
