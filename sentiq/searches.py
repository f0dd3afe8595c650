"""What a search chose, as the library returns it and --tuned reads it back: a leaf of the public
vocabulary (sentiq.results), light to import. A grid's cells are named here too, so the results and the
command line name them one way."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiq.choices import Calibration, ending_name

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PromptChoice:
    """tune-prompt's chosen cell: the prompt, calibration and ending --tuned applies, and how it scored."""

    prompt: str  # the spec --tuned applies: names, NAME:VARIANT or files, comma-separated
    calibrate: Calibration
    tail: int = 0  # each text's last words scored beside it; 0: none
    demo_seed: int | None = None  # k-shot: the demonstrations it was chosen with
    names: str = ""  # the prompt's names as the grid shows them
    criterion: str = "accuracy"  # what chose it
    score: float = math.nan  # its criterion
    top: float = math.nan  # the grid's best criterion (the choice is the simplest cell within an error of it)
    macro_f1: float = math.nan
    n: int = 0
    k: int = 0  # demonstrations per class it was scored with; 0: none
    baseline: tuple[str, float] | None = None  # the default prompt uncalibrated, and its criterion
    generation: PromptChoice | None = None  # for methods that generate: chosen by their first answer token

    @classmethod
    def of(cls, data: Mapping[str, Any], criterion: str | None = None) -> PromptChoice:
        criterion = criterion or str(data.get("criterion", "accuracy"))
        base = data.get("baseline")
        generation = data.get("generation")
        return cls(
            prompt=str(data["prompt"]),
            calibrate=data["calibrate"],
            tail=int(data.get("tail", 0)),
            demo_seed=data.get("demo_seed"),
            names=str(data.get("prompt_names", data["prompt"])),
            criterion=criterion,
            score=float(data.get(criterion, math.nan)),
            top=float(data.get(f"top_{criterion}", math.nan)),
            macro_f1=float(data.get("macro_f1", math.nan)),
            n=int(data.get("n", 0)),
            k=int(data.get("k") or 0),
            baseline=(str(base["prompt"]), float(base[criterion])) if isinstance(base, Mapping) else None,
            generation=cls.of(generation, criterion) if isinstance(generation, Mapping) else None,
        )

    def for_method(self, scores_labels: bool) -> PromptChoice:
        """The choice a method applies: a method that generates takes the one its first answer token chose,
        where the search made one."""
        return self if scores_labels or self.generation is None else self.generation


@dataclass(frozen=True)
class SamplingChoice:
    """tune-sampling's chosen cell."""

    temperature: float
    top_k: int
    prompt: str = ""
    macro_f1: float = math.nan
    accuracy: float = math.nan
    invalid: int = 0
    n: int = 0

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> SamplingChoice:
        return cls(
            temperature=float(data["temperature"]),
            top_k=int(data["top_k"]),
            prompt=str(data.get("prompt", "")),
            macro_f1=float(data.get("macro_f1", math.nan)),
            accuracy=float(data.get("accuracy", math.nan)),
            invalid=int(data.get("invalid", 0)),
            n=int(data.get("n", 0)),
        )


@dataclass
class TuneResult:
    grid: pd.DataFrame  # one row per cell
    best: dict[str, Any]
    folder: Path
    kind: str = "sampling"  # or "prompt"

    @property
    def choice(self) -> PromptChoice | SamplingChoice:
        """The chosen cell, typed."""
        return PromptChoice.of(self.best) if self.kind == "prompt" else SamplingChoice.of(self.best)

    def cell_names(self) -> list[str]:
        """Each grid row's name in tables and heatmaps."""
        return cell_names(self.grid)

    def chosen_name(self, choice: PromptChoice) -> str:
        """The name of the grid's cell that `choice` (the search's, or its generation part) is."""
        seed = choice.demo_seed if _several_draws(self.grid) else None
        return cell_name(choice.names, choice.tail, seed)


def cell_names(grid: pd.DataFrame) -> list[str]:
    """Each grid row's name in tables and heatmaps (see cell_name)."""
    seeds = grid["demo_seed"] if _several_draws(grid) else [None] * len(grid)
    return [cell_name(p, t, d) for p, t, d in zip(grid["prompt"], grid["tail"], seeds)]


def cell_name(prompt: str, tail: int, demo_seed: int | None = None) -> str:
    """The prompt, the ending it is scored with if any, and which demonstrations where several sets were drawn."""
    name = with_tail(prompt, tail)
    return name if demo_seed is None else f"{name} · demos {demo_seed}"


def _several_draws(grid: pd.DataFrame) -> bool:
    return "demo_seed" in grid and grid["demo_seed"].nunique() > 1


def with_tail(prompt: str, tail: int) -> str:
    """A grid row's name: the prompt, and the ending it is scored with if any."""
    return f"{prompt} {ending_name(tail)}" if tail else prompt
