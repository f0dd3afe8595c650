"""The figure of how far a run's probabilities can be trusted: a reliability diagram (accuracy against
confidence in the bins ECE is computed over) beside the risk–coverage curve."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from sentiq.workflows.confidence import ECE_BINS, TARGETS, Scored, confidence_bins, risk_coverage
from sentiq.workflows.plots import save_figure


def plot_confidence(path: Path, s: Scored, metrics: dict[str, Any], title: str) -> None:
    """confidence.png: the reliability diagram and the risk–coverage curve of the scored texts."""
    save_figure(confidence_figure(s, metrics, title), path)


def confidence_figure(s: Scored, metrics: dict[str, Any], title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.2, 4.2), dpi=120)
    _reliability(left, s.confidence, s.correct, metrics)
    _risk_coverage(right, s.confidence, s.correct, metrics)
    fig.suptitle(textwrap.fill(title, 90), fontsize=9)
    fig.tight_layout()
    return fig


def _reliability(ax: Any, confidence: np.ndarray, correct: np.ndarray, metrics: dict[str, Any]) -> None:
    edges = np.linspace(0, 1, ECE_BINS + 1)
    which = confidence_bins(confidence)
    counts = np.bincount(which, minlength=ECE_BINS)
    held = counts > 0
    accuracy = np.bincount(which, weights=correct.astype(float), minlength=ECE_BINS)[held] / counts[held]
    ax.bar(edges[:-1][held], accuracy, width=1 / ECE_BINS, align="edge", color="#4c72b0", edgecolor="white")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="calibrated")
    for x, a, n in zip(edges[:-1][held], accuracy, counts[held]):
        ax.text(x + 0.5 / ECE_BINS, min(a + 0.02, 0.97), f"{n}", ha="center", fontsize=6, color="#333333")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (probability of the label given)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(f"reliability · ECE {metrics['ece']:.3f} · n={metrics['scored']:,}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)


def _risk_coverage(ax: Any, confidence: np.ndarray, correct: np.ndarray, metrics: dict[str, Any]) -> None:
    coverage, risk = risk_coverage(confidence, correct)
    ax.plot(coverage, 1 - risk, color="#dd8452", lw=1.5)
    for target in TARGETS:
        ax.axhline(target, ls=":", color="grey", lw=0.8)
        ax.text(0.01, target, f"{target:.0%}", va="bottom", fontsize=7, color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(max(0.0, float((1 - risk).min()) - 0.05), 1.005)
    ax.set_xlabel("coverage (share answered, most confident first)")
    ax.set_ylabel("accuracy of those answered (1 − risk)")
    ax.set_title(f"risk–coverage · AURC {metrics['aurc']:.3f}", fontsize=9)
