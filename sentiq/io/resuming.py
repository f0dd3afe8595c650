"""What a resumed run must keep and may change, and the reading back of the predictions an interrupted
run left in its partial file (a torn last line dropped, said once)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sentiq.errors import RunError
from sentiq.io.files import atomic_write

# Settings that must match for a resumed run to continue the same work.
SAME_WORK = ("model", "method", "method_settings", "dataset", "n", "sample_seed", "sample")
# Settings a resumed run may change (where and how fast it runs, or a dtype this machine has in place of
# the run's): each change is recorded, in config.json's "changed_on_resume", and said.
MAY_CHANGE = ("device", "dtype", "batch_size", "max_batch_tokens")
log = logging.getLogger("sentiq")


def same_work(name: str, before: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse a resume whose settings differ (a model folder recorded as an absolute path by earlier
    versions and as '~/...' now is the same folder)."""

    def value(config: dict[str, Any], key: str) -> str:
        found = config.get(key)
        found = os.path.expanduser(found) if key == "model" and isinstance(found, str) else found
        return json.dumps(found, sort_keys=True)

    same = lambda k: value(before, k) == value(now, k)  # noqa: E731
    changed = [k for k in SAME_WORK if not same(k)]
    if changed:
        said = "; ".join(differences(before, now, changed))
        raise RunError(
            f"cannot resume {name} with other settings: {said} (give the options the run began with; "
            f"its config.json holds them)"
        )


def changes(before: dict[str, Any], now: dict[str, Any]) -> list[dict[str, Any]]:
    """The settings of MAY_CHANGE that a resume changes, each said once."""
    changed = [k for k in MAY_CHANGE if k in before and before[k] != now.get(k)]
    for key in changed:
        log.warning(f"resumed with {key} {now.get(key)!r} (the run began with {before[key]!r})")
    at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")
    return [{"at": at, "setting": k, "was": before[k], "now": now.get(k)} for k in changed]


def differences(before: dict[str, Any], now: dict[str, Any], keys: list[str]) -> list[str]:
    """'calibrate was 'none', now 'contextual'' for each setting that differs, within a settings table too."""
    said = []
    for key in keys:
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            said += [f"{k} was {old.get(k)!r}, now {new.get(k)!r}" for k in {**old, **new} if old.get(k) != new.get(k)]
        else:
            said.append(f"{key} was {old!r}, now {new!r}")
    return list(dict.fromkeys(said))  # 'method' stands beside its settings too: named once


def read_partial(path: Path) -> tuple[list[dict[str, Any]], bytes, int]:
    """The whole predictions in a partial file (the last one per id), the file's clean bytes, and how
    many lines were dropped: one torn by a kill mid-write, or any that is not a whole prediction."""
    if not path.exists():
        return [], b"", 0
    *lines, tail = path.read_bytes().split(b"\n")  # the piece after the last newline is torn, or empty
    kept, rows = [], []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "id" in row and "predicted" in row:
            kept.append(line + b"\n")
            rows.append(row)
    dropped = len(lines) - len(kept) + (1 if tail else 0)
    return list({r["id"]: r for r in rows}.values()), b"".join(kept), dropped


def repair(path: Path) -> list[dict[str, Any]]:
    """The predictions in a partial file, rewritten without its torn or unreadable lines, so that
    appending goes on from a clean line end."""
    rows, clean, dropped = read_partial(path)
    if dropped:
        atomic_write(path, clean.decode("utf-8"))
        log.warning("%s: %d torn or unreadable line(s) dropped before resuming", path.name, dropped)
    return rows
