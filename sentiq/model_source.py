"""Which weights `--model` names: an alias, a hub id, a local folder or a .gguf file, resolved without
touching the network or loading anything. Resolved once, by the settings that carry it
(ModelSettings.source), and handed down to whatever loads or names the model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sentiq.errors import ModelError
from sentiq.text import did_you_mean

DEFAULT_MODEL = "1.5b"
ALIASES = {
    "0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
}


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: a hub id, a local folder, or a local .gguf file."""

    kind: str  # "hub" | "dir" | "gguf"
    ref: str  # hub id or absolute path
    alias: str | None = None  # the alias the user typed, if any

    @property
    def label(self) -> str:
        """Short name for tables and plot titles."""
        if self.alias:
            return self.alias
        return Path(self.ref).name if self.kind != "hub" else self.ref.split("/")[-1]


def resolve_source(spec: str | None) -> ModelSource:
    """Turn `--model` (or SENTIQ_MODEL) into a source without touching the network."""
    spec = (spec or os.environ.get("SENTIQ_MODEL") or DEFAULT_MODEL).strip()
    if spec.lower() in ALIASES:
        return ModelSource("hub", ALIASES[spec.lower()], alias=spec.lower())
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {spec}")
        return ModelSource("gguf", str(path.resolve()))
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{spec} is a file, not a model folder (give a folder with config.json, or a .gguf file)")
        if not (path / "config.json").is_file():
            raise ModelError(f"{spec} is not a model folder: it has no config.json")
        return ModelSource("dir", str(path.resolve()))
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        hint = did_you_mean(spec.lower(), list(ALIASES), cutoff=0.5) or (
            " Use 0.5b, 1.5b, a hub id (owner/name) or a local folder."
        )
        raise ModelError(f"model not found: '{spec}' is neither an alias, a hub id nor an existing path.{hint}")
    return ModelSource("hub", spec)
