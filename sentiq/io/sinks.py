"""Predictions written as they come, to a .csv, .tsv, .jsonl or .parquet file, resumable after any stop.

csv, tsv and jsonl are appended in place; after each write `FILE.progress` records how many bytes are
whole, so a resume first cuts what a kill left half-written. Parquet cannot be appended to: rows are
gathered into complete files in `FILE.parts/`, merged into FILE (one row group per part) at the end.
The side files exist only while a run is unfinished.

An output that already holds labels is never replaced by accident: an unfinished one needs --resume
(continue) or --overwrite (start again), a finished one --overwrite, or --resume, which leaves it
untouched unless the input has ids it lacks (then they are added)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.errors import DataError
from sentiq.io.files import atomic_path, write_json
from sentiq.io.formats import SINKS, format_of, suffixes

PART_ROWS = 1024  # parquet rows per part file
PART_SECONDS = 30.0  # ... or the work of this long, whichever comes first


class Sink:
    def __init__(self, path: Path, columns: Sequence[str], resume: bool = False, overwrite: bool = False) -> None:
        self.path = path
        self.columns = list(columns)
        self.kind = format_of(path, SINKS) or ""
        if not self.kind:
            raise DataError(f"--output {path}: use a {suffixes(SINKS)} file")
        if path.is_dir():
            raise DataError(f"--output {path} is a folder; name a {suffixes(SINKS)} file")
        self.side = path.with_name(path.name + (".parts" if self.kind == "parquet" else ".progress"))
        unfinished = self.side.exists()
        finished = not unfinished and path.exists() and path.stat().st_size > 0
        if overwrite:
            self._remove()
        elif unfinished and not resume:
            raise DataError(
                f"{path} holds an unfinished run: add --resume to continue it, or --overwrite to start again"
            )
        elif finished and not resume:
            raise DataError(
                f"{path} already holds labels: add --overwrite to replace them, or --resume to add only the ids it lacks"
            )
        self.done: set[str] = self._resume() if resume else set()
        self.written = len(self.done)
        self.complete = resume and finished  # a finished output, untouched until a row it lacks comes
        self._parts = len(list(self.side.glob("part-*.parquet"))) if self.kind == "parquet" else 0
        if not self.side.exists() and not self.complete:
            self._start()
        self._pending: list[dict[str, Any]] = []
        self._flushed = time.monotonic()

    # -- writing -------------------------------------------------------------------------------------
    def write(self, rows: list[dict[str, Any]]) -> None:
        """csv/jsonl rows are durable before this returns. Parquet rows are gathered into parts of at
        least PART_ROWS rows or PART_SECONDS of work (a part per batch would make thousands of tiny
        files); a kill loses at most that much, which a resume redoes. `close` keeps the rest."""
        if not rows:
            return
        if self.complete:
            self._reopen()
        if self.kind == "parquet":
            self._pending += rows
            if len(self._pending) >= PART_ROWS or time.monotonic() - self._flushed > PART_SECONDS:
                self._flush()
        else:
            with open(self.path, "ab") as f:
                f.write(self._encode(rows, header=f.tell() == 0))
                f.flush()
                os.fsync(f.fileno())
                write_json(self.side, {"bytes": f.tell()})
        self.written += len(rows)

    def close(self) -> None:
        """Stop without finishing (an interrupt): what was labelled is kept for --resume."""
        if self.kind == "parquet":
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            frame = pd.DataFrame(self._pending, columns=self.columns)
            for column in (c for c in self.columns if c.startswith("p_") and c in frame):  # floats even when
                frame[column] = pd.to_numeric(frame[column])  # a part has no probability
            _write_parquet(self.side / f"part-{self._parts:06d}.parquet", frame)
            self._parts += 1
            self._pending = []
        self._flushed = time.monotonic()

    def finish(self) -> None:
        """The run is complete: parquet parts merged into the file, side files gone (a finished output
        that gained nothing is left as it was, byte for byte)."""
        if self.complete:
            return
        if self.kind == "parquet":
            self._flush()
            _merge_parquet(sorted(self.side.glob("part-*.parquet")), self.path, self.columns)
            shutil.rmtree(self.side)
        else:
            self.side.unlink(missing_ok=True)

    # -- starting and resuming -----------------------------------------------------------------------
    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "parquet":
            self.side.mkdir()
            self.path.unlink(missing_ok=True)  # empty: nothing to keep
        else:
            self.path.write_bytes(b"")
            write_json(self.side, {"bytes": 0})

    def _remove(self) -> None:
        """--overwrite: the earlier output and its side files go before anything new is written."""
        if self.side.is_dir():
            shutil.rmtree(self.side)
        self.side.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)

    def _reopen(self) -> None:
        """A finished output gains rows (new ids in the input): for parquet it becomes the run's first part."""
        if self.kind == "parquet":
            self.side.mkdir()
            os.replace(self.path, self.side / "part-000000.parquet")
            self._parts = 1
        else:
            write_json(self.side, {"bytes": self.path.stat().st_size})
        self.complete = False

    def _resume(self) -> set[str]:
        """Ids already written; a file without side files is a finished run (its ids all done)."""
        if self.kind == "parquet":
            parts = sorted(self.side.glob("part-*.parquet")) if self.side.exists() else []
            if not parts and self.path.exists():
                parts = [self.path]
            return {i for p in parts for i in _parquet_ids(p)}
        if not self.path.exists():
            return set()
        if self.side.exists():
            whole = json.loads(self.side.read_text())["bytes"]
            with open(self.path, "r+b") as f:  # cut what a kill left half-written
                f.truncate(whole)
        return set(self._ids())

    def _ids(self) -> Iterator[str]:
        if self.kind == "jsonl":
            with open(self.path, encoding="utf-8") as f:
                yield from (str(json.loads(line)["id"]) for line in f if line.strip())
            return
        sep = "\t" if self.kind == "tsv" else ","
        if self.path.stat().st_size:
            for chunk in pd.read_csv(
                self.path, sep=sep, usecols=["id"], dtype=str, keep_default_na=False, chunksize=100_000
            ):
                yield from chunk["id"]

    def _encode(self, rows: list[dict[str, Any]], header: bool) -> bytes:
        if self.kind == "jsonl":
            return "".join(json.dumps({c: r.get(c) for c in self.columns}) + "\n" for r in rows).encode()
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            self.columns,
            delimiter="\t" if self.kind == "tsv" else ",",
            extrasaction="ignore",
            lineterminator="\n",
        )
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode()


def _parquet_ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(i) for i in pq.read_table(path, columns=["id"]).column("id").to_pylist()]


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _merge_parquet(parts: list[Path], path: Path, columns: list[str]) -> None:
    """One row group at a time into one file: memory stays at one part's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p) for p in parts] or [pa.schema([(c, pa.string()) for c in columns])]
    schema = pa.unify_schemas(schemas, promote_options="permissive")  # a kept column all null in one part
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for part in parts:
            file = pq.ParquetFile(part)
            for group in range(file.num_row_groups):  # a reopened output is one part of many groups
                writer.write_table(file.read_row_group(group).cast(schema))
