"""Files written so that a crash never leaves half of one: through a temporary file and a rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """The one atomic write: a temporary file beside `path` (same suffix, hidden) for the block to write,
    synced and renamed onto `path` when it ends, removed if it fails; a crash never leaves half a file."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary file would be, not mkstemp's owner-only
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, text: str) -> None:
    """Text written through atomic_path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def write_frame(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, df.to_csv(index=False))


def same_or_inside(path: Path, other: Path) -> bool:
    """True when `path` is `other` (by name, or by identity, device and inode: a hard or symbolic link),
    or lies inside the folder `other`."""
    a, b = path.expanduser().resolve(), other.expanduser().resolve()
    if a == b or a.is_relative_to(b):
        return True
    return a.exists() and b.exists() and a.samefile(b)
