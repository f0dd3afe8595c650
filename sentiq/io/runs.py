"""A run's folder and its whole life: opened new or resumed, predictions appended per batch, finished
with its artifacts (each written atomically) or left with its status recorded; and reading runs back."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from sentiq.errors import Interrupted, RunError, first_line
from sentiq.io.files import write_frame, write_json
from sentiq.io.names import run_path
from sentiq.io.resuming import changes, read_partial, repair, same_work
from sentiq.predictions import RUN_FIELDS

PARTIAL = "predictions.partial.jsonl"  # one JSON object a line: a torn write can only tear the last one
log = logging.getLogger("sentiq")


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
            same_work(folder.name, recorded, config)
            if recorded.get("status") == "complete":
                return cls(folder, recorded, [])
            kept = {
                k: recorded[k] for k in ("created", "calibration") if k in recorded
            }  # a prior, once estimated, stays
            config = {**config, **kept, "resumed": [*recorded.get("resumed", []), _now()]}
            changed = [*recorded.get("changed_on_resume", []), *changes(recorded, config)]
            config |= {"changed_on_resume": changed} if changed else {}
        else:
            _make_writable(folder)
            (folder / PARTIAL).unlink(missing_ok=True)
        run = cls(folder, {**config, "status": "running"}, [])
        write_json(folder / "config.json", run.config)
        run._start_logging()
        if resume:
            run.done = repair(folder / PARTIAL)
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
        rows = {r["id"]: r for r in read_partial(self.folder / PARTIAL)[0]}
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
