"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path


def evaluate_args(model: Path, dataset: Path, output_dir: Path, run_id: str, n: int, *extra: str) -> list[str]:
    """`sentiq evaluate` arguments for the tiny model on a small local dataset."""
    return [
        "evaluate",
        *("--model", str(model), "--dataset", str(dataset), "--n", str(n)),
        *("--output-dir", str(output_dir), "--run-id", run_id),
        *extra,
    ]
