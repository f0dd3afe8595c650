"""Folder names from what users type: a run id, a fit's name, a model's label, made one plain folder
name that stays inside the folder it is meant for."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from sentiq.errors import RunError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def make_run_id(*parts: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return safe_name("-".join([stamp, *parts]))


def safe_name(name: str, what: str = "run id") -> str:
    """A name (a run id, a fit's) made one plain folder name: no separators, no '..', nothing hidden."""
    cleaned = _SAFE.sub("-", name).strip(".-")
    if not cleaned:
        raise RunError(f"{what} '{name}' has no usable characters; use letters, digits, '.', '_' or '-'")
    return cleaned[:120]


def run_path(root: Path, run_id: str) -> Path:
    """root/run_id, refused if it would land outside root; nothing is created."""
    root = root.expanduser().resolve()
    path = (root / safe_name(run_id)).resolve()
    if path.parent != root:
        raise RunError(f"run id '{run_id}' would leave {root}")
    return path
