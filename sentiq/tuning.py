"""The temperature x top-k search for the sampling method, on a tuning split of the train pool."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.errors import OptionError
from sentiq.methods import INVALID
from sentiq.models import resolve_source
from sentiq.runs import safe_name
from sentiq.settings import MethodConfig, TuneSettings


@dataclass
class TuneResult:
    grid: pd.DataFrame  # one row per cell: temperature, top_k, accuracy, macro_f1, invalid
    best: dict[str, Any]
    folder: Path


def tuning_folder(root: Path, model: str | None) -> Path:
    """root/tuning/<model label>: where the grid and the chosen setting of a model live."""
    return root / "tuning" / safe_name(resolve_source(model).label)


def parse_grid(text: str | None, kind: type, default: tuple, name: str) -> tuple:
    """'0.2,0.7' -> (0.2, 0.7); values are checked as the sampling method would check them."""
    if not text:
        return default
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise OptionError(f"{name}: '{text}' is not a comma-separated list of numbers") from exc
    bad = [v for v in values if (v <= 0 if kind is float else v < 1)]
    if not values or bad:
        raise OptionError(f"{name}: values must be {'above 0' if kind is float else 'at least 1'} (got {text})")
    return tuple(dict.fromkeys(values))


def tune(model: Any, settings: TuneSettings, start_task: Any) -> TuneResult:
    """Every cell classifies the same tuning texts; the prompt is encoded once for all cells.
    Chosen by macro-F1, then fewer invalid answers, then accuracy."""
    from sentiq.data import balanced_sample, load_pool
    from sentiq.evaluation import load_engine
    from sentiq.methods import Classifier
    from sentiq.metrics import quality

    split = balanced_sample(load_pool(), settings.n, settings.seed)
    engine = load_engine(model)
    cells = [(t, k) for t in settings.temperatures for k in settings.top_ks]
    configs = [
        MethodConfig(method="sampling", temperature=t, top_k=k, samples=settings.samples, seed=settings.seed)
        for t, k in cells
    ]
    clf = Classifier(engine, configs[0])
    clf.warm_up()
    advance = start_task(f"tuning {len(cells)} cells", len(split))
    predictions = clf.predict_grid(list(split["text"]), configs, lambda idx: advance(len(idx)))
    gold = list(split["label"])
    rows = []
    for (t, k), preds in zip(cells, predictions):
        labels = [p.label for p in preds]
        q = quality(gold, labels)
        rows.append(
            dict(temperature=t, top_k=k, macro_f1=q.macro_f1, accuracy=q.accuracy, invalid=labels.count(INVALID))
        )
    grid = pd.DataFrame(rows)
    ranked = grid.sort_values(["macro_f1", "invalid", "accuracy"], ascending=[False, True, False], kind="stable")
    top = ranked.iloc[0]
    folder = tuning_folder(settings.output_dir, model.model)
    folder.mkdir(parents=True, exist_ok=True)
    best = {
        "model": engine.lm.source.ref,
        "temperature": float(top["temperature"]),
        "top_k": int(top["top_k"]),
        "samples": settings.samples,
        "macro_f1": float(top["macro_f1"]),
        "accuracy": float(top["accuracy"]),
        "invalid": int(top["invalid"]),
        "n": len(split),
        "seed": settings.seed,
        "split": "train pool (disjoint from evaluation)",
    }
    _save(folder, grid, best, engine.lm.source.label)
    return TuneResult(grid, best, folder)


def _save(folder: Path, grid: pd.DataFrame, best: dict[str, Any], label: str) -> None:
    from sentiq.files import write_frame, write_json
    from sentiq.plots import save_heatmap

    write_frame(folder / "grid.csv", grid)
    write_json(folder / "best.json", best)
    save_heatmap(folder / "heatmap.png", grid, best, f"{label} · sampling macro-F1 · n={best['n']}")


def apply_tuned(methods: list[MethodConfig], model: str | None, root: Path = Path("results")) -> list[MethodConfig]:
    """Sampling configs with the temperature and top-k that tune-sampling chose for this model."""
    path = tuning_folder(root, model) / "best.json"
    if not path.is_file():
        raise OptionError(f"no tuned setting at {path}: run 'sentiq tune-sampling' with the same --model first")
    best = json.loads(path.read_text())
    return [
        replace(m, temperature=best["temperature"], top_k=best["top_k"]) if m.method == "sampling" else m
        for m in methods
    ]
