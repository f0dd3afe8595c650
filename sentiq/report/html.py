"""`compare --html`: one self-contained HTML file (images embedded, styles and script inline, nothing
fetched at view time) that puts every saved run side by side and answers "which model and method,
at what cost?"."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.io.files import atomic_write
from sentiq.results import Comparison, named
from sentiq.text import prior_text
from sentiq.version import __version__
from sentiq.workflows.compare import panels
from sentiq.workflows.plots import accuracy_speed_figure, figure_png, latency_figure

COLUMNS = [  # (key, heading, kind): kind "text" sorts alphabetically, "num" numerically
    ("rank", "rank", "num"),
    ("model", "model", "text"),
    ("method", "method", "text"),
    ("prompt", "prompt", "text"),
    ("n", "n", "num"),
    ("accuracy", "accuracy (95% CI)", "num"),
    ("macro_f1", "macro-F1", "num"),
    ("invalid", "invalid", "num"),
    ("ece", "ECE", "num"),
    ("coverage_at_95", "cov. at 95%", "num"),
    ("words_per_s", "words/s", "num"),
    ("latency_p50_ms", "p50 ms", "num"),
    ("latency_p95_ms", "p95 ms", "num"),
    ("sample", "sample", "text"),
]


def write_report(path: Path, result: Comparison, root: Path, metric: str) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("sentiq.report", "templates"), autoescape=select_autoescape(["html"]))
    page = env.get_template("report.html").render(
        title="sentiq report",
        created=time.strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__,
        root=str(root),
        metric=metric,
        warnings=result.warnings,
        columns=COLUMNS,
        rows=_rows(result.table),
        charts=[_chart(title, table) for title, table in panels(result.table)],
        agreement=[(sample, _matrix(named(m, result.table))) for sample, m in result.agreement.items()],
        runs=[_run_details(root / r["run_id"], r) for r in result.table.to_dict("records")],
        tuning=_tuning(root / "tuning"),
    )
    atomic_write(path, page)


def _chart(title: str, table: pd.DataFrame) -> dict[str, Any]:
    """One label set and sample's panel: its figure and its front, fastest first."""
    front = table[table["pareto"]].sort_values("words_per_s", ascending=False).to_dict("records")
    return {"title": title, "image": _data_uri(figure_png(accuracy_speed_figure(table))), "front": front}


def _rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Table rows with display text and sort values; a rank shared with a neighbour is shown as 'n='."""
    counts = table["rank"].value_counts()
    rows = []
    for r in table.to_dict("records"):
        shown = {
            "rank": f"{r['rank']}=" if counts[r["rank"]] > 1 else str(r["rank"]),
            "accuracy": f"{r['accuracy']:.3f} ({r['acc_low']:.3f}–{r['acc_high']:.3f})",
            "macro_f1": "one label" if pd.isna(r["macro_f1"]) else f"{r['macro_f1']:.3f}",
            **{
                k: "–" if r.get(k) is None or pd.isna(r[k]) else f"{r[k]:.3f}"
                for k in ("ece", "aurc", "coverage_at_95")
            },
            "words_per_s": f"{r['words_per_s']:,.0f}",
            "latency_p50_ms": _ms(r["latency_p50_ms"]),
            "latency_p95_ms": _ms(r["latency_p95_ms"]),
        }
        cells = [(shown.get(key, str(r[key])), _sort_value(r[key]), kind) for key, _, kind in COLUMNS]
        rows.append({"cells": cells, "run_id": r["run_id"], "pareto": bool(r["pareto"])})
    return rows


def _ms(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.0f}"


def _sort_value(value: Any) -> str:
    if isinstance(value, int | float) and not pd.isna(value):
        return repr(float(value))
    return str(value)


def _matrix(matrix: pd.DataFrame) -> dict[str, Any]:
    return {
        "columns": list(matrix.columns),
        "rows": [(name, [f"{v:.2f}" for v in values]) for name, values in zip(matrix.index, matrix.to_numpy())],
    }


def _run_details(folder: Path, row: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to trust one run: its confusion matrix, latencies and the settings that matter."""
    config = json.loads((folder / "config.json").read_text())
    predictions = pd.read_csv(folder / "predictions.csv", usecols=lambda c: c == "latency_ms")
    latency = predictions.get("latency_ms")  # None in runs of other versions
    confusion, trust = folder / "confusion_matrix.png", folder / "confidence.png"
    title = f"{row['model']} · {row['method']}"
    settings = {
        **{k: v for k, v in config.get("method_settings", {}).items() if k != "method"},
        "prompt": row["prompt"],
        "calibration prior": _prior(config.get("calibration")),
        "abstention": _abstention(config.get("abstention"), row),
        "device / dtype": f"{config.get('device')} / {config.get('dtype')}",
        "engine": (config.get("engine") or {}).get("name", "local"),
        "sample": row["sample"],
        "created": config.get("created"),
        "sentiq": config.get("sentiq_version"),
    }
    return {
        "run_id": row["run_id"],
        "title": title,
        "settings": {k: v for k, v in settings.items() if v not in (None, "", "-")},
        "confusion": _data_uri(confusion.read_bytes()) if confusion.is_file() else None,
        "confidence": _data_uri(trust.read_bytes()) if trust.is_file() else None,
        "latency": None
        if latency is None
        else _data_uri(figure_png(latency_figure(latency, f"{title} · per-text latency"))),
    }


def _abstention(record: dict[str, Any] | None, row: dict[str, Any]) -> str | None:
    """Where a run abstained and what it left: the threshold (and the target it was chosen for), the texts
    labelled uncertain and the accuracy of those answered."""
    if not record:
        return None
    target = (
        f" (chosen for accuracy {record['target_accuracy']:g}, bound {record['bound']:.3f})"
        if "bound" in record
        else ""
    )
    answered = row.get("selective_accuracy")
    kept = "" if answered is None or pd.isna(answered) else f"; accuracy of those answered {answered:.3f}"
    return f"below confidence {record.get('confidence'):.4g}{target}: {row.get('uncertain')} uncertain{kept}"


def _prior(calibration: dict[str, Any] | None) -> str | None:
    if not calibration:
        return None
    try:
        prior = f"P(positive) {prior_text(calibration['prior'])}"
    except (KeyError, TypeError):  # a record of another version
        return str(calibration.get("mode"))
    return f"{calibration.get('mode')}: {prior}, from {calibration.get('estimated_on')}"


def _tuning(folder: Path) -> list[dict[str, Any]]:
    """Every tuning search saved under results/tuning/<model>/<kind>/, with its heatmap; a choice file
    from another version or search is described by what it holds."""
    found = []
    for best in sorted(folder.glob("*/*/best.json")):
        heatmap = best.with_name("heatmap.png")
        if not heatmap.is_file():
            continue
        found.append(
            {
                "model": best.parent.parent.name,
                "kind": best.parent.name,
                "summary": describe_choice(best),
                "image": _data_uri(heatmap.read_bytes()),
            }
        )
    return found


def describe_choice(best: Path) -> str:
    """One line for a saved tuning choice: the settings it holds, its accuracy and n where recorded."""
    try:
        chosen = json.loads(best.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable choice file ({type(exc).__name__})"
    if not isinstance(chosen, dict):
        return "a choice file of an unknown form"
    shown = {
        "prompt": chosen.get("prompt_names", chosen.get("prompt")),
        "calibration": chosen.get("calibrate"),
        "temperature": chosen.get("temperature"),
        "top-k": chosen.get("top_k"),
    }
    settings = ", ".join(f"{k} {v}" for k, v in shown.items() if v is not None) or "no settings recorded"
    measured = [
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in (("accuracy", chosen.get("accuracy")), ("n", chosen.get("n")))
        if isinstance(v, int | float)
    ]
    return f"{settings} ({', '.join(measured)})" if measured else settings


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
