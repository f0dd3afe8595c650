"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def evaluate_args(model: Path, dataset: Path, output_dir: Path, run_id: str, n: int, *extra: str) -> list[str]:
    """`sentiq evaluate` arguments for the tiny model on a small local dataset."""
    return [
        "evaluate",
        *("--model", str(model), "--dataset", str(dataset), "--n", str(n)),
        *("--output-dir", str(output_dir), "--run-id", run_id),
        *extra,
    ]


def parse_label(answer: str) -> str | None:
    """The label an answer names under the default prompt's label words."""
    from sentiq.choices import DEFAULT_PROMPT
    from sentiq.methods.prompts import load_prompt

    return load_prompt(DEFAULT_PROMPT).parse(answer)


@dataclass
class PlanShape:
    """How full the forward passes of a batch plan are: what decides speed on an accelerator."""

    batches: int
    rows_per_batch: float
    tokens_per_batch: float  # padded, prefix included: what one forward pass holds
    padding: float  # share of padded tokens that are padding


def plan_shape(plan: list[list[int]], lengths: Sequence[int], shared: int = 0) -> PlanShape:
    padded = [len(b) * (max(lengths[i] for i in b) + shared) for b in plan]
    real = sum(lengths[i] + shared for b in plan for i in b)
    rows = sum(len(b) for b in plan)
    return PlanShape(len(plan), rows / len(plan), sum(padded) / len(plan), 1 - real / sum(padded))
