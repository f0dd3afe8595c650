"""Texts to classify, read in chunks so that memory stays flat however large the input: a .txt, .csv,
.tsv, .jsonl, .json or .parquet file, a folder of such files, or texts already in memory. Every chunk
is a DataFrame with `id`, `text` and the columns the caller asked to keep."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sentiq.errors import DataError, first_line
from sentiq.io.formats import TEXTS, format_of, suffixes
from sentiq.io.tables import SEPARATORS, count_delimited, delimited_chunks, delimited_header


@dataclass
class TextSource:
    """Where texts come from; `total` is known before reading (for an ETA) where the format allows."""

    files: list[Path] = field(default_factory=list)
    items: list[tuple[str, str]] | None = None  # texts given in memory (arguments, stdin)
    text_column: str = "text"
    keep: tuple[str, ...] = ()  # input columns carried to the output
    total: int | None = None
    origin: Path | None = None  # the file or folder given, which no output may overwrite

    def position(self, text_id: str) -> str:
        """Where a text sits, for a message: its id, as the output names it, and for line input the
        line (counted from 1, as editors count) or the argument it came from."""
        head, _, row = text_id.rpartition(":")
        if not row.isdigit():
            return f"id {text_id}"
        if self.items is not None:
            return f"id {text_id} at {'line' if head == 'stdin' else 'argument'} {int(row) + 1}"
        path = next((f for f in self.files if f.name == head), None) if head else self.files[0]
        if path is not None and path.suffix.lower() == ".txt":
            return f"id {text_id} at line {int(row) + 1}"
        return f"id {text_id}"

    def chunks(self, size: int) -> Iterator[pd.DataFrame]:
        if self.items is not None:
            frame = pd.DataFrame(self.items, columns=["id", "text"])
            for start in range(0, len(frame), size):
                yield frame.iloc[start : start + size]
            return
        for path in self.files:
            prefix = f"{path.name}:" if len(self.files) > 1 else ""  # ids unique across a folder
            rows = 0
            for chunk in _guarded(path, _read(path, size, self.text_column, self.keep)):
                if "id" in chunk.columns and "id" not in self.keep:
                    ids = chunk["id"].astype(str)
                else:
                    ids = pd.Series([f"{prefix}{rows + i}" for i in range(len(chunk))], index=chunk.index)
                rows += len(chunk)
                out = pd.DataFrame({"id": ids.to_numpy(), "text": chunk[self.text_column].astype(str).to_numpy()})
                for column in self.keep:
                    if column != "text":
                        out[column] = chunk[column].to_numpy()
                yield out


def in_memory(items: list[tuple[str, str]], keep: Sequence[str] = ("text",)) -> TextSource:
    """Texts from arguments or stdin: only `id` and `text` exist to keep."""
    unknown = [c for c in keep if c not in ("id", "text")]
    if unknown:
        raise DataError(f"--keep-columns {unknown[0]}: texts from arguments or stdin have only id and text")
    return TextSource(items=items, keep=tuple(c for c in keep if c != "id"), total=len(items))


def open_source(path: Path, text_column: str | None = None, keep: Sequence[str] = ("text",)) -> TextSource:
    """A file or a folder of files, checked (columns included) before any model loads."""
    path = path.expanduser()
    if not path.exists():
        raise DataError(f"file not found: {path}")
    files = sorted(p for p in path.iterdir() if format_of(p)) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no {suffixes(TEXTS)} files")
    column = text_column or "text"
    for f in files:
        _check(f, column, [c for c in keep if c not in ("id", "text", column)])  # 'text': the text itself
    counts = [_count(f) for f in files]
    total = None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
    kept = tuple(dict.fromkeys("text" if c == column else c for c in keep if c != "id"))  # the text by either name
    return TextSource(files, None, column, kept, total, origin=path)


def _kind(path: Path) -> str:
    kind = format_of(path)
    if kind is None:
        raise DataError(f"{path}: unknown file type '{path.suffix}'; use {suffixes(TEXTS)}")
    if path.is_dir():
        raise DataError(f"{path} is a folder inside a folder; give its files or the folder itself")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    return kind


def _columns(path: Path, kind: str) -> list[str]:
    import pyarrow.parquet as pq

    if kind == "txt":
        return ["text"]
    if kind == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    if kind in SEPARATORS:
        return delimited_header(path, kind)
    first = next(iter(_read(path, 1, None, ())), None)
    return [] if first is None else list(first.columns)


def _check(path: Path, text_column: str, keep: list[str]) -> None:
    kind = _kind(path)
    try:
        columns = _columns(path, kind)
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from exc
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path} is not a readable {kind} file: {first_line(exc)}") from exc
    if text_column not in columns:
        raise DataError(
            f"{path}: no column '{text_column}'; columns are: {', '.join(map(str, columns))} (use --text-column)"
        )
    missing = [c for c in keep if c not in columns]
    if missing:
        raise DataError(f"{path}: no column '{missing[0]}' to keep; columns are: {', '.join(map(str, columns))}")


def _count(path: Path) -> int | None:
    """Rows in a file without holding it: parquet from its footer, line formats by counting lines,
    csv/tsv by a strict parse (quoted fields may span lines; a row longer than the header is refused
    here, before any text is labelled)."""
    kind = _kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if kind in ("txt", "jsonl"):
        lines, last = 0, b"\n"
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        return lines + (last != b"\n")
    if kind in SEPARATORS:
        return count_delimited(path, kind)
    return None


def _read(path: Path, size: int, text_column: str | None, keep: Sequence[str]) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks of `size`, only the columns needed where the format allows."""
    kind = _kind(path)
    wanted = None if text_column is None else list(dict.fromkeys(["id", text_column, *keep]))
    if kind == "txt":
        yield from _txt_chunks(path, size)
    elif kind == "parquet":
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        columns = None if wanted is None else [c for c in wanted if c in file.schema_arrow.names]
        for batch in file.iter_batches(batch_size=size, columns=columns):
            yield batch.to_pandas()
    elif kind in SEPARATORS:
        for chunk in delimited_chunks(path, kind, size):
            yield chunk if wanted is None else chunk[[c for c in wanted if c in chunk.columns]]
    elif kind == "jsonl":
        yield from pd.read_json(path, lines=True, dtype=False, chunksize=size)
    else:  # a JSON array cannot be read in parts
        frame = pd.read_json(path, dtype=False)
        for start in range(0, len(frame), size):
            yield frame.iloc[start : start + size]


def _guarded(path: Path, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """A fault found deep in a file (checked only at its start) as one clear line."""
    try:
        yield from chunks
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from exc
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read it past its start: {first_line(exc)}") from exc


def _txt_chunks(path: Path, size: int) -> Iterator[pd.DataFrame]:
    lines: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            lines.append(line.rstrip("\r\n"))
            if len(lines) == size:
                yield pd.DataFrame({"text": lines})
                lines = []
    if lines:
        yield pd.DataFrame({"text": lines})
