"""A search's choice: the record a search writes of its chosen cell, and that record read back as a typed
choice, what `--tuned` applies and what the command line shows, from best.json of any version in this
one place (searches of 0.3 and earlier chose by accuracy and kept no ending; before 0.2 one choice
served every method)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sentiq.methods.plan import plan_method
from sentiq.settings import MethodConfig

if TYPE_CHECKING:
    import pandas as pd


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
