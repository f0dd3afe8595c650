"""A run's folder: settings, predictions, metrics, plots and log, written atomically; reading runs back."""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.errors import RunError

PREDICTION_FIELDS = [
    "id",
    "gold",
    "predicted",
    "p_positive",
    "p_positive_raw",
    "answer",
    "words",
    "tokens",
    "truncated",
    "latency_ms",
]
PARTIAL = "predictions.partial.csv"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def make_run_id(*parts: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return safe_name("-".join([stamp, *parts]))


def safe_name(name: str) -> str:
    """A run id that is one plain folder name: no separators, no '..', nothing hidden."""
    cleaned = _SAFE.sub("-", name).strip(".-")
    if not cleaned:
        raise RunError(f"run id '{name}' has no usable characters; use letters, digits, '.', '_' or '-'")
    return cleaned[:120]


def run_path(root: Path, run_id: str) -> Path:
    """root/run_id, refused if it would land outside root; nothing is created."""
    root = root.expanduser().resolve()
    path = (root / safe_name(run_id)).resolve()
    if path.parent != root:
        raise RunError(f"run id '{run_id}' would leave {root}")
    return path


def run_dir(root: Path, run_id: str) -> Path:
    """root/run_id, created and checked writable."""
    path = run_path(root, run_id)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"cannot write to {path}: {exc.strerror or exc}; choose another --output-dir") from exc
    return path


def atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def write_frame(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, df.to_csv(index=False))


class PredictionLog:
    """predictions.partial.csv, appended and flushed per batch so an interrupted run keeps its work."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / PARTIAL
        fresh = not self.path.exists()
        self._file = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - kept open across batches
        self._writer = csv.DictWriter(self._file, fieldnames=PREDICTION_FIELDS)
        if fresh:
            self._writer.writeheader()

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        self._writer.writerows(rows)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()  # closing twice is harmless


def read_partial(folder: Path) -> pd.DataFrame:
    """Predictions an interrupted run already made (a torn last line, from a kill mid-write, is dropped)."""
    path = folder / PARTIAL
    if not path.exists():
        return pd.DataFrame(columns=PREDICTION_FIELDS)
    df = pd.read_csv(path, dtype={"id": str, "answer": str}, keep_default_na=False, on_bad_lines="skip")
    df = df[df["predicted"].isin(["positive", "negative", "invalid"])]
    return df.drop_duplicates("id", keep="last")


class RunLog:
    """run.log: settings, per-batch latencies, totals; one timestamped line each."""

    def __init__(self, folder: Path) -> None:
        self._file = open(folder / "run.log", "a", encoding="utf-8")  # noqa: SIM115

    def __call__(self, message: str) -> None:
        self._file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def plot_confusion(path: Path, gold: list[str], predicted: list[str], title: str) -> None:
    """Confusion matrix PNG; 'invalid' gets its own column when any answer was invalid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = ["positive", "negative"] + (["invalid"] if "invalid" in predicted else [])
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    ConfusionMatrixDisplay.from_predictions(gold, predicted, labels=labels, ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(textwrap.fill(title, 56), fontsize=9)  # long model and method names wrap, never clip
    save_figure(fig, path)


def save_heatmap(path: Path, grid: pd.DataFrame, best: dict[str, Any], title: str) -> None:
    """Macro-F1 over temperature x top-k, the chosen cell outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = grid.pivot(index="temperature", columns="top_k", values="macro_f1").sort_index()
    table = table[sorted(table.columns)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(table.columns), 1.2 + 0.5 * len(table.index)), dpi=120)
    image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{t:g}" for t in table.index])
    ax.set_xlabel("top-k")
    ax.set_ylabel("temperature")
    for y, t in enumerate(table.index):
        for x, k in enumerate(table.columns):
            ax.text(x, y, f"{table.loc[t, k]:.2f}", ha="center", va="center", color="white", fontsize=7)
            if t == best["temperature"] and k == best["top_k"]:
                ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(image, ax=ax, label="macro-F1")
    ax.set_title(textwrap.fill(title, 56), fontsize=9)  # long model and method names wrap, never clip
    save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> None:
    """Lay out, write atomically and release a finished figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)


@dataclass
class SavedRun:
    run_id: str
    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]


def read_runs(root: Path) -> list[SavedRun]:
    """Every complete run under root (a folder with config.json and metrics.json)."""
    runs = []
    if not root.is_dir():
        return runs
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            config = json.loads((folder / "config.json").read_text())
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if config.get("status") == "complete":
            runs.append(SavedRun(folder.name, folder, config, metrics))
    return runs
