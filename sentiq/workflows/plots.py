"""Every figure sentiq draws, written atomically: confusion matrices, tuning heatmaps, the comparison chart."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentiq.io.files import atomic_path


def plot_confusion(
    path: Path, gold: list[str], predicted: list[str], title: str, labels: Sequence[str] = ("positive", "negative")
) -> None:
    """Confusion matrix PNG: a row per gold label, a column per label and one for 'invalid' answers when
    there were any (no gold text is invalid, so there is no row for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts, columns = confusion_counts(gold, predicted, labels)
    width, height = max(4.6, 0.8 * len(columns) + 2.6), max(4.0, 0.7 * len(labels) + 2.4)
    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        dark = n > counts.max() / 2
        ax.text(j, i, f"{n:,}", ha="center", va="center", color="white" if dark else "black", fontsize=9)
    ax.set_xticks(range(len(columns)), columns, rotation=45 if len(columns) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(textwrap.fill(title, 56), fontsize=9)  # long model and method names wrap, never clip
    save_figure(fig, path)


def confusion_counts(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Counts of (gold label, answer): a row per label, a column per label and, when any answer was
    invalid, one for those."""
    from sklearn.metrics import confusion_matrix

    columns = [*labels, *(["invalid"] if "invalid" in predicted else [])]
    return confusion_matrix(gold, predicted, labels=columns)[: len(labels)], columns


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
            value = table.loc[row, col]
            ink = "black" if image.norm(value) > 0.6 else "white"  # readable on viridis' bright end too
            ax.text(x, y, f"{value:.2f}", ha="center", va="center", color=ink, fontsize=7)
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
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)


MARKERS = {"loglik": "o", "zero-shot": "s", "k-shot": "^", "sampling": "D"}


def comparison_chart(path: Path, panels: Sequence[tuple[str, pd.DataFrame]]) -> None:
    """One accuracy-against-speed panel per label set and sample, stacked, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8.4, 4.6 * len(panels)), dpi=130, squeeze=False)
    for ax, (title, table) in zip(axes[:, 0], panels):
        draw_accuracy_speed(ax, table, title)
    save_figure(fig, path)


def accuracy_speed_figure(table: pd.DataFrame, title: str | None = None) -> Any:
    """One panel's figure (see draw_accuracy_speed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 4.6), dpi=130)
    draw_accuracy_speed(ax, table, title)
    return fig


def draw_accuracy_speed(ax: Any, table: pd.DataFrame, title: str | None = None) -> None:
    """Every run of one label set and sample a point: words/s (log scale) against accuracy with its 95%
    interval; models by colour, methods by marker, the Pareto front (no run both faster and more
    accurate) drawn as a line. `table`: compare's ranking (accuracy, acc_low, acc_high, words_per_s,
    model, method, pareto) for runs whose accuracies compare."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    models = list(dict.fromkeys(table["model"]))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    front = table[table["pareto"]].sort_values("words_per_s")
    ax.plot(front["words_per_s"], front["accuracy"], color="0.55", linestyle="--", linewidth=1, zorder=1)
    for r in table.itertuples():
        base = str(r.method).split()[0]
        err = [[r.accuracy - r.acc_low], [r.acc_high - r.accuracy]]
        ax.errorbar(r.words_per_s, r.accuracy, yerr=err, color=colours[r.model], alpha=0.55, linewidth=1, zorder=2)
        ax.scatter(
            r.words_per_s,
            r.accuracy,
            marker=MARKERS.get(base, "X"),
            s=64 if r.pareto else 40,
            color=colours[r.model],
            edgecolor="black" if r.pareto else "none",
            zorder=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("words / s (log scale)")
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.grid(True, which="both", alpha=0.25)
    by_model = [
        Line2D([], [], color=colours[m], marker="o", linestyle="", label=textwrap.shorten(m, 34)) for m in models
    ]
    methods = list(dict.fromkeys(str(m).split()[0] for m in table["method"]))
    by_method = [Line2D([], [], color="0.3", marker=MARKERS.get(m, "X"), linestyle="", label=m) for m in methods]
    by_method.append(Line2D([], [], color="0.55", linestyle="--", label="Pareto front"))
    outside = dict(fontsize=7, title_fontsize=7, alignment="left", frameon=False)
    ax.legend(handles=[*by_model, *by_method], loc="upper left", bbox_to_anchor=(1.01, 1.0), **outside)
    low, high = ax.get_xlim()
    if high / max(low, 1e-12) < 10:  # within a decade: a few round values, each named once
        from matplotlib.ticker import FixedLocator, MaxNLocator, NullFormatter, NullLocator

        ticks = [t for t in MaxNLocator(nbins=5).tick_values(low, high) if low <= t <= high]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, i: _distinct(ticks)[i] if i is not None else ""))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _number(v)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: _minor_label(v, low, high)))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    heading = "Accuracy against speed: up and to the right is better"
    ax.set_title("\n".join(textwrap.fill(line, 90) for line in (title, heading) if line), fontsize=9)


def _number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if value >= 1 else f"{value:g}"


def _distinct(values: list[float]) -> list[str]:
    """Labels for `values` with as few decimals as tell them apart."""
    for digits in range(4):
        labels = [_number(v, digits) for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{v:g}" for v in values]


def _minor_label(value: float, low: float, high: float) -> str:
    """Labels between a log axis's powers of ten: only 2x and 5x exactly, and none when the axis spans
    more than two decades (every minor tick labelled ran together: '800900')."""
    import math

    if value <= 0 or high / max(low, 1e-12) > 100:
        return ""
    lead = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return _number(value) if any(abs(lead - m) < 1e-6 for m in (2, 5)) else ""


def latency_figure(latencies_ms: Any, title: str) -> Any:
    """The distribution of per-text latency (each text's share of its batch's time), p50 and p95 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.asarray(latencies_ms, dtype=float)
    fig, ax = plt.subplots(figsize=(4.6, 3.0), dpi=110)
    ax.hist(values, bins=min(40, max(5, len(values) // 5)), color="tab:blue", alpha=0.8)
    for q, style in ((50, "-"), (95, "--")):
        ax.axvline(np.percentile(values, q), color="black", linestyle=style, linewidth=1, label=f"p{q}")
    ax.set_xlabel("latency per text, ms")
    ax.set_ylabel("texts")
    ax.legend(fontsize=7)
    ax.set_title(textwrap.fill(title, 56), fontsize=8)
    return fig


def figure_png(fig: Any) -> bytes:
    """A figure as PNG bytes (for embedding), released afterwards."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()
