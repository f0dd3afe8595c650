"""Delimited tables (.csv, .tsv) read strictly, by every reader of tables: a row with more fields than
the header is an error that names its line. pandas would otherwise take a first field as the row index
(every row one field longer than the header: an unquoted comma in a one-column file) or drop the extra
fields, and label a misread text without a word."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from sentiq.errors import DataError

SEPARATORS = {"csv": ",", "tsv": "\t"}
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def delimited_header(path: Path, kind: str) -> list[str]:
    """The column names of a .csv/.tsv file, read from its first row alone."""
    first = pd.read_csv(path, sep=SEPARATORS[kind], header=None, dtype=str, keep_default_na=False, nrows=1)
    return _names(path, first)


def delimited_chunks(path: Path, kind: str, size: int) -> Iterator[pd.DataFrame]:
    """The rows of a .csv/.tsv file in chunks of at most `size`, every value a string (empty where a row
    is short), the header's names as columns. Quoted fields may hold separators and line breaks."""
    sep = SEPARATORS[kind]
    try:
        with pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, chunksize=size) as reader:
            first = reader.get_chunk(size + 1)  # the header row, then `size` rows
            names = _names(path, first)
            chunk = first.iloc[1:]
            while len(chunk):
                yield chunk.set_axis(names, axis=1)
                chunk = _next(reader, size)
    except pd.errors.ParserError as exc:
        raise _misread(path, kind, exc) from exc


def _next(reader: pd.io.parsers.TextFileReader, size: int) -> pd.DataFrame:
    try:
        return reader.get_chunk(size)
    except StopIteration:
        return pd.DataFrame()


def read_delimited(path: Path, kind: str) -> pd.DataFrame:
    """A whole .csv/.tsv file, read as delimited_chunks reads it."""
    chunks = list(delimited_chunks(path, kind, 100_000))
    if not chunks:
        return pd.DataFrame(columns=delimited_header(path, kind), dtype=str)
    return pd.concat(chunks, ignore_index=True)


def count_delimited(path: Path, kind: str) -> int:
    """The data rows of a .csv/.tsv file, every row checked as delimited_chunks checks it."""
    return sum(len(chunk) for chunk in delimited_chunks(path, kind, 200_000))


def _names(path: Path, first: pd.DataFrame) -> list[str]:
    if first.empty:
        raise DataError(f"{path} has no header row")
    names = [str(v) for v in first.iloc[0]]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise DataError(f"{path}: the header names column '{twice}' twice; column names must be unique")
    return names


def _misread(path: Path, kind: str, exc: Exception) -> DataError:
    found = _FIELDS.search(str(exc))
    if found is None:
        return DataError(f"{path} is not a readable {kind} file: {str(exc).strip().splitlines()[-1]}")
    expected, line, saw = found.groups()
    sep = "a comma" if kind == "csv" else "a tab"
    return DataError(
        f"{path} line {line}: {saw} fields where the header has {expected}; put a text that holds {sep} in "
        'double quotes ("…"), or use a .txt file for one text a line'
    )
