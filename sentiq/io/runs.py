"""A run's folder and its whole life: opened new or resumed, predictions appended per batch, finished
with its artifacts (each written atomically) or left with its status recorded; and reading runs back."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from sentiq.errors import Interrupted, RunError, first_line
from sentiq.io.files import atomic_write, write_frame, write_json
from sentiq.predictions import RUN_FIELDS

PARTIAL = "predictions.partial.jsonl"  # one JSON object a line: a torn write can only tear the last one
# Settings that must match for a resumed run to continue the same work.
SAME_WORK = ("model", "method", "method_settings", "dataset", "n", "sample_seed", "sample")
# Settings a resumed run may change (where and how fast it runs, or a dtype this machine has in place of
# the run's): each change is recorded, in config.json's "changed_on_resume", and said.
MAY_CHANGE = ("device", "dtype", "batch_size", "max_batch_tokens")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
log = logging.getLogger("sentiq")


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


def recorded_config(folder: Path) -> dict[str, Any] | None:
    """A run folder's config.json, or None when there is no run there."""
    path = folder / "config.json"
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"run {folder.name}: its config.json is unreadable ({exc})") from exc
    if not isinstance(config, dict):
        raise RunError(f"run {folder.name}: its config.json holds a {type(config).__name__}, not a run's settings")
    return config


def check_run_id(root: Path, run_id: str, resume: bool) -> None:
    """Refuse, before any model loads, a new run whose folder exists or a resume with nothing to resume."""
    recorded = recorded_config(run_path(root, run_id))
    if recorded is not None and not resume:
        raise RunError(
            f"run {run_id} already exists in {root}: add --resume to continue it, or choose another --run-id"
        )
    if recorded is None and resume:
        raise RunError(f"nothing to resume: {root} holds no run {run_id} (check the run id and --output-dir)")


class Run:
    """One run folder from start to finish. `open` starts it or resumes it (`done` then holds the
    predictions already on disk, every kept line whole); `append` keeps each batch's predictions as
    they come; `finish` writes the artifacts and marks it complete; leaving the `with` block any other
    way records it as interrupted or failed. A run resumed after it completed is left untouched."""

    def __init__(self, folder: Path, config: dict[str, Any], done: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.config = config
        self.done = done
        self._partial: Any = None
        self._handler: logging.Handler | None = None

    @property
    def complete(self) -> bool:
        return self.config.get("status") == "complete"

    @property
    def run_id(self) -> str:
        return self.folder.name

    @classmethod
    def open(cls, root: Path, run_id: str, config: dict[str, Any], resume: bool = False) -> Run:
        check_run_id(root, run_id, resume)
        folder = run_path(root, run_id)
        if resume:
            recorded = recorded_config(folder) or {}
            _same_work(folder.name, recorded, config)
            if recorded.get("status") == "complete":
                return cls(folder, recorded, [])
            kept = {
                k: recorded[k] for k in ("created", "calibration") if k in recorded
            }  # a prior, once estimated, stays
            config = {**config, **kept, "resumed": [*recorded.get("resumed", []), _now()]}
            changes = [*recorded.get("changed_on_resume", []), *_changes(recorded, config)]
            config |= {"changed_on_resume": changes} if changes else {}
        else:
            _make_writable(folder)
            (folder / PARTIAL).unlink(missing_ok=True)
        run = cls(folder, {**config, "status": "running"}, [])
        write_json(folder / "config.json", run.config)
        run._start_logging()
        if resume:
            run.done = _repair(folder / PARTIAL)
            run.log(f"resume: {len(run.done)} predictions on disk")
        run._partial = open(folder / PARTIAL, "a", encoding="utf-8")  # noqa: SIM115 - open across batches
        return run

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and not self.complete:
            interrupted = issubclass(kind, (KeyboardInterrupt, Interrupted))
            status = "interrupted" if interrupted else "failed"
            self.log(f"{status}: {first_line(exc) if exc and not interrupted else 'stopped by the user'}")
            self._set_status(status, error=None if interrupted else first_line(exc))
        self.close()

    def record(self, **values: Any) -> None:
        """Add to config.json now (what is learnt during a run, such as a calibration prior)."""
        self._set_status(self.config["status"], **values)

    def log(self, message: str) -> None:
        """One line of run.log (library warnings during the run land there too)."""
        log.info(message)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Keep a batch's predictions: flushed and synced, so a kill loses at most the batch under way."""
        self._partial.writelines(json.dumps(r) + "\n" for r in rows)
        self._partial.flush()
        os.fsync(self._partial.fileno())

    def predictions(self, ids: list[str], columns: Sequence[str] = RUN_FIELDS) -> pd.DataFrame:
        """Every prediction on disk, in the order of `ids`; a missing one is an error, never a gap."""
        self._partial.flush()
        rows = {r["id"]: r for r in _read(self.folder / PARTIAL)[0]}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise RunError(f"run {self.folder.name} has no prediction for {len(missing)} texts (first: {missing[0]})")
        return pd.DataFrame([rows[i] for i in ids], columns=list(columns))

    def finish(self, predictions: pd.DataFrame, metrics: dict[str, Any], **recorded: Any) -> None:
        """The artifacts, then config.json marked complete (the moment the run counts), then the
        partial file goes."""
        write_frame(self.folder / "predictions.csv", predictions)
        write_json(self.folder / "metrics.json", metrics)
        write_frame(self.folder / "metrics.csv", pd.json_normalize(metrics))  # per-label figures as columns
        self.config = {**self.config, **recorded}
        self._set_status("complete")
        self.close()
        (self.folder / PARTIAL).unlink(missing_ok=True)

    def close(self) -> None:
        if self._partial is not None:
            self._partial.close()
            self._partial = None
        if self._handler is not None:
            log.removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def _set_status(self, status: str, **extra: Any) -> None:
        self.config = {**self.config, "status": status, **{k: v for k, v in extra.items() if v is not None}}
        write_json(self.folder / "config.json", self.config)

    def _start_logging(self) -> None:
        self._handler = logging.FileHandler(self.folder / "run.log", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"))
        log.addHandler(self._handler)
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)


class MemoryRun:
    """A run kept in memory, with Run's interface and no files: the library's evaluate when nothing is
    to be written; `save` writes it as a run folder later."""

    folder = None

    def __init__(self, run_id: str, config: dict[str, Any]) -> None:
        self.run_id = run_id
        self.config = {**config, "status": "running"}
        self.done: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self._rows: dict[str, dict[str, Any]] = {}

    @property
    def complete(self) -> bool:
        return self.config.get("status") == "complete"

    def __enter__(self) -> MemoryRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and not self.complete:
            self.config["status"] = "interrupted" if issubclass(kind, (KeyboardInterrupt, Interrupted)) else "failed"

    def record(self, **values: Any) -> None:
        self.config.update(values)

    def log(self, message: str) -> None:
        log.debug(message)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        self._rows.update((r["id"], r) for r in rows)

    def predictions(self, ids: list[str], columns: Sequence[str] = RUN_FIELDS) -> pd.DataFrame:
        missing = [i for i in ids if i not in self._rows]
        if missing:
            raise RunError(f"run {self.run_id} has no prediction for {len(missing)} texts (first: {missing[0]})")
        return pd.DataFrame([self._rows[i] for i in ids], columns=list(columns))

    def finish(self, predictions: pd.DataFrame, metrics: dict[str, Any], **recorded: Any) -> None:
        self.metrics = metrics
        self.config = {**self.config, **recorded, "status": "complete"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")


def _make_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"cannot write to {folder}: {exc.strerror or exc}; choose another --output-dir") from exc


def _same_work(name: str, before: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse a resume whose settings differ (a model folder recorded as an absolute path by earlier
    versions and as '~/...' now is the same folder)."""

    def value(config: dict[str, Any], key: str) -> str:
        found = config.get(key)
        found = os.path.expanduser(found) if key == "model" and isinstance(found, str) else found
        return json.dumps(found, sort_keys=True)

    same = lambda k: value(before, k) == value(now, k)  # noqa: E731
    changed = [k for k in SAME_WORK if not same(k)]
    if changed:
        said = "; ".join(_differences(before, now, changed))
        raise RunError(
            f"cannot resume {name} with other settings: {said} (give the options the run began with; "
            f"its config.json holds them)"
        )


def _changes(before: dict[str, Any], now: dict[str, Any]) -> list[dict[str, Any]]:
    """The settings of MAY_CHANGE that a resume changes, each said once."""
    changed = [k for k in MAY_CHANGE if k in before and before[k] != now.get(k)]
    for key in changed:
        log.warning(f"resumed with {key} {now.get(key)!r} (the run began with {before[key]!r})")
    return [{"at": _now(), "setting": k, "was": before[k], "now": now.get(k)} for k in changed]


def _differences(before: dict[str, Any], now: dict[str, Any], keys: list[str]) -> list[str]:
    """'calibrate was 'none', now 'contextual'' for each setting that differs, within a settings table too."""
    said = []
    for key in keys:
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            said += [f"{k} was {old.get(k)!r}, now {new.get(k)!r}" for k in {**old, **new} if old.get(k) != new.get(k)]
        else:
            said.append(f"{key} was {old!r}, now {new!r}")
    return list(dict.fromkeys(said))  # 'method' stands beside its settings too: named once


def _read(path: Path) -> tuple[list[dict[str, Any]], bytes, int]:
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


def _repair(path: Path) -> list[dict[str, Any]]:
    """The predictions in a partial file, rewritten without its torn or unreadable lines, so that
    appending goes on from a clean line end."""
    rows, clean, dropped = _read(path)
    if dropped:
        atomic_write(path, clean.decode("utf-8"))
        log.warning("%s: %d torn or unreadable line(s) dropped before resuming", path.name, dropped)
    return rows
