"""A fit on disk: a folder with its weights (weights.npz, plain arrays, read without pickle) and its card
(card.json: what it was fitted with and on, and how well it did). The card holds the weights' SHA-256 and
its own, so a truncated or altered file is refused rather than read."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from sentiq.errors import OptionError
from sentiq.io.files import atomic_path, write_json

CARD = "card.json"
WEIGHTS = "weights.npz"
FORMAT = "sentiq-fit"
SAMPLED = 1 << 20  # bytes read from each end of a large weights file for its digest
MODEL_FILES = ("*.safetensors", "*.bin", "*.gguf", "config.json")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def card_digest(card: dict[str, Any]) -> str:
    """The card's own digest: its content, less this field, as canonical JSON."""
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8"))


def model_digest(kind: str, ref: str, revision: str | None) -> str:
    """A digest of the weights a model was loaded from: for a folder or .gguf file, each weight file's
    name, size and first and last MiB (and config.json whole); for a hub id, the id and commit."""
    if kind == "hub":
        return sha256(f"{ref}@{revision}".encode())
    path = Path(ref)
    files = [path] if path.is_file() else sorted({f for pattern in MODEL_FILES for f in path.glob(pattern)})
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as handle:
            h.update(handle.read(SAMPLED))
            if size > 2 * SAMPLED:
                handle.seek(size - SAMPLED)
                h.update(handle.read(SAMPLED))
    return h.hexdigest()


def check_free(folder: Path, overwrite: bool) -> None:
    """Refuse to write a fit where one is (unless `overwrite`), over a folder that is not a fit, or
    where a file stands in the way of its folder."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OptionError(
            f"{blocking} is a file, so the fit's folder {folder} cannot be made: choose another --output-dir"
        )
    if folder.exists() and not overwrite:
        raise OptionError(f"{folder} already exists: give another --name, or --overwrite to replace it")
    if folder.exists() and not (folder / CARD).is_file():
        raise OptionError(f"{folder} is not a fit (it has no {CARD}); --overwrite replaces only a fit")


def write_fit(folder: Path, card: dict[str, Any], arrays: dict[str, np.ndarray], overwrite: bool = False) -> None:
    """The fit written to `folder` (weights first, then the card that vouches for them): nothing is
    replaced unless `overwrite`."""
    check_free(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    with atomic_path(folder / WEIGHTS) as tmp:
        tmp.write_bytes(data)
    card = {"format": FORMAT, **card, "weights_sha256": sha256(data)}
    write_json(folder / CARD, {**card, "card_sha256": card_digest(card)})


def read_fit(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A fit's card and weights, each checked against the card's digests."""
    folder = Path(path).expanduser()
    if folder.is_file() and folder.name in (CARD, WEIGHTS):
        folder = folder.parent
    if not folder.is_dir():
        raise OptionError(f"--fit {path}: no such fit folder (sentiq fit writes one under results/fits/)")
    if not (folder / CARD).is_file() or not (folder / WEIGHTS).is_file():
        raise OptionError(f"--fit {path} is not a fit: it has no {CARD} and {WEIGHTS} (sentiq fit writes them)")
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OptionError(f"--fit {path}: {CARD} is not readable JSON (truncated or altered)") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise OptionError(f"--fit {path}: {CARD} is not a sentiq fit's card")
    if card.get("card_sha256") != card_digest(card):
        raise OptionError(f"--fit {path}: {CARD} was altered after it was written (its digest does not match)")
    data = (folder / WEIGHTS).read_bytes()
    if sha256(data) != card.get("weights_sha256"):
        raise OptionError(f"--fit {path}: {WEIGHTS} is not the file its card vouches for (truncated or altered)")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return card, {name: npz[name] for name in npz.files}
