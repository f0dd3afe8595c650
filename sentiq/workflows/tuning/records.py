"""A search's choice: the record a search writes of its chosen cell, and that record read back as a typed
choice, what `--tuned` applies and what the command line shows, from best.json of any version in this
one place (searches of 0.3 and earlier chose by accuracy and kept no ending; before 0.2 one choice
served every method)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sentiq.choices import Calibration
from sentiq.methods.plan import plan_method
from sentiq.settings import MethodConfig

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


def choice_record(row: pd.Series, specs: dict[str, str], base: MethodConfig) -> dict[str, Any]:
    """A chosen grid row as --tuned applies it: prompt, calibration, ending and, in a search with
    demonstrations, which set (with its texts, so the choice can be read)."""
    choice = {
        "prompt": ",".join(specs[r] for r in str(row["prompt"]).split(",")),
        "prompt_names": str(row["prompt"]),
        "calibrate": str(row["calibrate"]),
        "tail": int(row["tail"]),
        "accuracy": float(row["accuracy"]),
        "macro_recall": float(row["macro_recall"]),
    }
    if "demo_seed" in row:
        seed = int(row["demo_seed"])
        plan = plan_method(replace(base, prompt=choice["prompt"], demo_seed=seed))
        choice |= {"demo_seed": seed, "demonstrations": plan.record()["demonstrations"]}
    return choice
