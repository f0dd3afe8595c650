"""Run folders read back, for ranking and reports: every complete run under a folder, and why any other
run there is left out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RANKED_METRICS = ("n", "accuracy", "macro_f1", "invalid", "words_per_s")  # what compare needs of a run


@dataclass
class SavedRun:
    run_id: str
    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]


def read_runs(root: Path) -> tuple[list[SavedRun], list[str]]:
    """Every complete run under root (a folder with config.json and metrics.json), and a line for each
    run that cannot be ranked: unfinished (interrupted, failed, running), a file unreadable, or from a
    version without a metric."""
    runs: list[SavedRun] = []
    left_out: list[str] = []
    if not root.is_dir():
        return runs, left_out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue  # not a run folder, or one that never started
        if not isinstance(config, dict) or "status" not in config:
            continue
        if config["status"] != "complete":  # said, so that a run missing from the table is explained
            left_out.append(
                f"{folder.name}: {config['status']}, not complete (sentiq evaluate --resume {folder.name}); left out"
            )
            continue
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError) as exc:
            left_out.append(f"{folder.name}: metrics.json cannot be read ({type(exc).__name__}); left out")
            continue
        missing = [k for k in RANKED_METRICS if not isinstance(metrics, dict) or k not in metrics]
        if missing:
            left_out.append(f"{folder.name}: metrics.json has no '{missing[0]}' (another version's run?); left out")
            continue
        runs.append(SavedRun(folder.name, folder, config, metrics))
    return runs, left_out
