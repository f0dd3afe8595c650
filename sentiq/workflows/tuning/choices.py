"""A search's record and its use: where a model's choices are kept, how a grid's cells are named, and
`--tuned`, which applies them to the methods asked for."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.errors import OptionError, first_line
from sentiq.io.names import safe_name
from sentiq.model_source import ModelSource
from sentiq.predictions import is_binary
from sentiq.searches import PromptChoice, SamplingChoice
from sentiq.settings import MethodConfig
from sentiq.text import LABELS

PROMPT_CHOICE = ("prompt", "calibrate")  # what --tuned applies from a prompt search
SAMPLING_CHOICE = ("temperature", "top_k")  # ... and from a sampling search
SPLIT_FILE = "split.csv"  # which texts a search scored: evaluation with its choice leaves them out


def tuning_folder(root: Path, model: ModelSource, kind: str, labels: tuple[str, ...] = LABELS) -> Path:
    """root/tuning/<model label>/<kind>: where a search's grid and choice for a model live; for a label
    set other than the binary one, root/tuning/<model label>/<its labels>/<kind>."""
    folder = root / "tuning" / safe_name(model.label)
    return folder / (kind if is_binary(labels) else f"{safe_name('-'.join(labels))}/{kind}")


def save_search(
    folder: Path,
    split: pd.DataFrame,
    grid: pd.DataFrame,
    best: dict[str, Any],
    table: pd.DataFrame,
    cell: tuple[Any, Any],
    axes: tuple[str, str, str],
    title: str,
) -> None:
    import shutil
    import time

    from sentiq.io.datasets import save_texts_used
    from sentiq.io.files import write_frame, write_json
    from sentiq.workflows.plots import save_heatmap

    folder.mkdir(parents=True, exist_ok=True)
    save_texts_used(folder / SPLIT_FILE, split)
    write_frame(folder / "grid.csv", grid)
    write_json(folder / "best.json", best)
    save_heatmap(folder / "heatmap.png", table, cell, axes, title)
    kept = folder / "searches" / time.strftime("%Y%m%d-%H%M%S")  # every search kept; best.json: the latest
    kept.mkdir(parents=True, exist_ok=True)
    for name in (SPLIT_FILE, "grid.csv", "best.json", "heatmap.png"):
        shutil.copy2(folder / name, kept / name)


def apply_tuned(methods: list[MethodConfig], model: ModelSource, root: Path = Path("results")) -> list[MethodConfig]:
    """Every method with the prompt, calibration and ending tune-prompt chose for this model and the label
    set of the method's prompt (k-shot the choice made with demonstrations, `tune-prompt --k`, where there
    is one; methods that generate the choice made by their first answer token, where the search made one);
    sampling also with the temperature and top-k tune-sampling chose. Each method also names the texts
    those searches scored, which evaluation leaves out."""
    from sentiq.methods.plan import label_set
    from sentiq.methods.prompts import load_prompts

    tuned = []
    for m in methods:
        labels = label_set(load_prompts(m.prompt))
        with_demos = tuning_folder(root, model, "k-shot-prompt", labels)
        where = with_demos if m.method == "k-shot" and (with_demos / "best.json").is_file() else None
        if where is not None:
            saved = _read_choice(where / "best.json", PROMPT_CHOICE, "tune-prompt --k K")
        else:
            where = tuning_folder(root, model, "prompt", labels)
            saved = _best(where, labels, "tune-prompt")
        prompt = PromptChoice.of(saved).for_method(m.scores_labels)
        tail = prompt.tail
        said = f"prompt {prompt.prompt}, calibration {prompt.calibrate}" + (f", ending {tail}" if tail else "")
        m = replace(
            m,
            prompt=prompt.prompt,
            calibrate=prompt.calibrate,
            tail=tail,
            demo_seed=prompt.demo_seed if m.method == "k-shot" else None,  # the demonstrations tuned with
            tuned_from=f"{said} ({where})",
            tuned_on=_split_of(where),
        )
        if m.method == "sampling":
            where = tuning_folder(root, model, "sampling", labels)
            sampling = SamplingChoice.of(_best(where, labels, "tune-sampling"))
            m = replace(
                m,
                temperature=sampling.temperature,
                top_k=sampling.top_k,
                tuned_from=f"{m.tuned_from}; temperature {sampling.temperature:g}, top-k {sampling.top_k} ({where})",
                tuned_on=m.tuned_on + _split_of(where),
            )
        tuned.append(m)
    return tuned


def _split_of(folder: Path) -> tuple[str, ...]:
    """The search's split file, where it kept one (searches of 0.3 and earlier did not)."""
    path = folder / SPLIT_FILE
    return (str(path),) if path.is_file() else ()


def _best(folder: Path, labels: tuple[str, ...], command: str) -> dict[str, Any]:
    path = folder / "best.json"
    if not path.is_file():
        data = "" if is_binary(labels) else f" --dataset FILE (texts labelled {', '.join(labels)})"
        raise OptionError(f"no tuned setting at {path}: run 'sentiq {command}{data}' with the same --model first")
    return _read_choice(path, PROMPT_CHOICE if folder.name != "sampling" else SAMPLING_CHOICE, command)


def _read_choice(path: Path, needed: tuple[str, ...], command: str) -> dict[str, Any]:
    """A saved choice with the settings --tuned applies, or one line on what it lacks and what to run."""
    try:
        choice = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OptionError(f"{path} cannot be read ({first_line(exc)}): run 'sentiq {command}' again") from exc
    missing = [k for k in needed if not isinstance(choice, dict) or k not in choice]
    if missing:
        raise OptionError(
            f"{path} has no '{missing[0]}' (saved by another version or search?): run 'sentiq {command}' again"
        )
    return choice
