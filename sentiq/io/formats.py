"""The one map from a file's suffix to its format, and which formats each reader and writer takes."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

FORMATS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
TEXTS = frozenset(FORMATS.values())  # classify --input: texts to label
TABLES = TEXTS - {"txt"}  # --dataset: labelled tables (a .txt file has no label column)
SINKS = frozenset({"csv", "tsv", "jsonl", "parquet"})  # classify --output, appended as batches are done
RAY_READS = TABLES  # an id column to join labels back on
RAY_WRITES = frozenset({"csv", "jsonl", "parquet"})  # Ray Data's writers


def format_of(path: Path | str, allowed: Collection[str] = TEXTS) -> str | None:
    """The format of `path` by its suffix (any case), or None when it is not one of `allowed`."""
    kind = FORMATS.get(Path(path).suffix.lower())
    return kind if kind in allowed else None


def suffixes(allowed: Collection[str]) -> str:
    """'.csv, .tsv or .parquet': the suffixes of `allowed`, for a one-line message."""
    names = [s for s, kind in FORMATS.items() if kind in allowed]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
