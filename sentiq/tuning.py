"""The temperature x top-k search for the sampling method."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sentiq.errors import OptionError
from sentiq.methods import MethodConfig
from sentiq.models import resolve_source
from sentiq.runs import safe_name

TUNING_DIR = Path("results") / "tuning"


def best_path(model: str | None, root: Path = TUNING_DIR) -> Path:
    """Where tune-sampling keeps the chosen setting for a model."""
    return root / safe_name(resolve_source(model).label) / "best.json"


def apply_tuned(methods: list[MethodConfig], model: str | None, root: Path = TUNING_DIR) -> list[MethodConfig]:
    """Sampling configs with the tuned temperature and top-k for this model."""
    path = best_path(model, root)
    if not path.is_file():
        raise OptionError(
            f"no tuned setting for this model at {path}: run 'sentiq tune-sampling' with the same --model first"
        )
    best = json.loads(path.read_text())
    return [
        replace(m, temperature=best["temperature"], top_k=best["top_k"]) if m.method == "sampling" else m
        for m in methods
    ]
