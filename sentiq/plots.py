"""Every figure sentiq draws, written atomically: confusion matrices, tuning heatmaps, the comparison chart."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd


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


def save_heatmap(
    path: Path, table: pd.DataFrame, best: tuple[Any, Any], axes: tuple[str, str, str], title: str
) -> None:
    """A tuning grid as a heatmap (rows x columns of a pivoted table), the chosen cell outlined in red.
    `axes`: the column axis, row axis and value names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(len(str(r)) for r in table.index)
    fig, ax = plt.subplots(
        figsize=(1.5 + 0.06 * width + 0.8 * len(table.columns), 1.3 + 0.42 * len(table.index)), dpi=120
    )
    image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(table.columns)), [_tick(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [_tick(r) for r in table.index], fontsize=7)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    for y, row in enumerate(table.index):
        for x, col in enumerate(table.columns):
            ax.text(x, y, f"{table.loc[row, col]:.2f}", ha="center", va="center", color="white", fontsize=7)
            if (row, col) == best:
                ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(image, ax=ax, label=axes[2])
    ax.set_title(textwrap.fill(title, 64), fontsize=9)  # long model and method names wrap, never clip
    save_figure(fig, path)


def _tick(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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


def comparison_chart(path: Path, table: pd.DataFrame) -> None:
    """Macro-F1 and words/s per model x method, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{m}\n{meth}" for m, meth in zip(table["model"], table["method"])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(names) * 2), 4.2), dpi=120)
    left.bar(names, table["macro_f1"], color="tab:blue")
    left.set_ylim(0, 1)
    left.set_title("macro-F1")
    right.bar(names, table["words_per_s"], color="tab:orange")
    right.set_title("words / s")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    save_figure(fig, path)
