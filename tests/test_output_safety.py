"""classify --output never loses labels or data: a kill after whole chunks resumes, a finished output
resumed is left alone, an input is never overwritten, an existing output is replaced only when asked,
and a closed pipe leaves a resumable output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import sentiq.io.sinks
import sentiq.workflows.classify
from sentiq.cli import app

runner = CliRunner()
N = 14  # texts; in chunks of 4: 4, 4, 4, 2


class Killed(BaseException):
    """A kill: no handler runs, nothing is closed or flushed."""


def _input(tmp_path: Path) -> Path:
    texts = [f"review {i}: {'great fun' if i % 2 else 'a dull mess'}" for i in range(N)]
    texts[5] = "   "  # an empty text: reported, never labelled
    path = tmp_path / "in.parquet"
    pd.DataFrame({"id": [f"t{i}" for i in range(N)], "text": texts}).to_parquet(path, index=False)
    return path


def _args(model: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return ["classify", "-i", str(src), "--output", str(out), "--model", str(model), "--chunk-size", "4", *extra]


def _ids(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return [str(i) for i in pd.read_parquet(path)["id"]]
    if path.suffix == ".jsonl":
        return [str(json.loads(line)["id"]) for line in path.read_text().splitlines()]
    return list(pd.read_csv(path, dtype=str)["id"])


def _labels(path: Path) -> dict[str, str]:
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else None
    if frame is None:
        frame = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    return dict(zip(frame["id"].astype(str), frame["label"]))


def _stopped(args: list[str], chunks: int, error: type[BaseException], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`classify args`, stopped once `chunks` whole chunks are labelled (between chunks, where a resume
    then finds a chunk with nothing left to do): a kill (nothing handled) or a Ctrl-C (its result)."""
    seen = []

    def after_chunk() -> None:
        seen.append(1)
        if len(seen) == chunks:
            raise error()

    with monkeypatch.context() as m:
        m.setattr(sentiq.workflows.classify, "_release_memory", after_chunk)
        m.setattr(sentiq.io.sinks, "PART_ROWS", 2)  # parquet parts flushed within a chunk, as on a big input
        if error is not Killed:
            return runner.invoke(app, args)
        with pytest.raises(Killed):
            runner.invoke(app, args, catch_exceptions=False)
    return None


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_a_run_killed_after_whole_chunks_resumes_with_every_id_once(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, chunks: int
) -> None:
    src, out = _input(tmp_path), tmp_path / f"labels{suffix}"
    _stopped(_args(tiny_model, src, out, "--batch-size", "1"), chunks, Killed, monkeypatch)
    assert out.with_name(out.name + (".parts" if suffix == ".parquet" else ".progress")).exists()  # unfinished
    resumed = runner.invoke(app, _args(tiny_model, src, out, "--batch-size", "1", "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert "already there" in resumed.stderr and "skipped 1 empty text: id t5" in resumed.stderr
    ids = _ids(out)
    assert sorted(ids) == sorted(f"t{i}" for i in range(N) if i != 5) and len(ids) == len(set(ids))
    assert not any(p.name.startswith(f"labels{suffix}.") for p in tmp_path.iterdir())  # no side file left
    whole = tmp_path / f"whole{suffix}"
    assert runner.invoke(app, _args(tiny_model, src, whole)).exit_code == 0
    assert _labels(out) == _labels(whole)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_finished_output_resumed_twice_is_left_byte_for_byte(tiny_model: Path, tmp_path: Path, suffix: str) -> None:
    src, out = _input(tmp_path), tmp_path / f"labels{suffix}"
    assert runner.invoke(app, _args(tiny_model, src, out, "--keep-columns", "text")).exit_code == 0
    finished = out.read_bytes()
    for _ in range(2):
        again = runner.invoke(app, _args(tiny_model, src, out, "--keep-columns", "text", "--resume"))
        assert again.exit_code == 0, again.output
        assert f"{out} was already complete (13 labels); nothing changed" in again.stderr
        assert out.read_bytes() == finished
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", f"labels{suffix}"]


def test_a_finished_output_resumed_with_new_ids_gains_only_those(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    pd.DataFrame({"id": ["a", "b"], "text": ["good", "bad"]}).to_parquet(folder / "1.parquet")
    out = tmp_path / "labels.parquet"
    assert runner.invoke(app, _args(tiny_model, folder, out, "--resume")).exit_code == 0
    pd.DataFrame({"id": ["c"], "text": ["fine"]}).to_parquet(folder / "2.parquet")
    again = runner.invoke(app, _args(tiny_model, folder, out, "--resume"))
    assert again.exit_code == 0 and "2 of them already there" in again.stderr
    assert _ids(out) == ["a", "b", "c"]


def test_ctrl_c_between_chunks_says_how_to_continue_and_resume_does(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = _input(tmp_path), tmp_path / "labels.parquet"
    stopped = _stopped(_args(tiny_model, src, out), 2, KeyboardInterrupt, monkeypatch)
    assert stopped.exit_code == 130
    assert "interrupted; 7 labels are in" in stopped.stderr and "--resume continues" in stopped.stderr
    resumed = runner.invoke(app, _args(tiny_model, src, out, "--resume"))
    assert resumed.exit_code == 0 and sorted(_ids(out)) == sorted(f"t{i}" for i in range(N) if i != 5)


def _link(kind: str, target: Path, at: Path) -> Path:
    (os.link if kind == "hardlink" else os.symlink)(target, at)
    return at


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "inside-folder", "symlink-to-folder"])
def test_an_output_that_would_overwrite_the_input_is_refused(tiny_model: Path, tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    victim = data / "victim.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["good", "bad"]}).to_csv(victim, index=False)
    before = victim.read_bytes()
    src, out = {
        "same": (victim, victim),
        "symlink": (victim, _link("symlink", victim, tmp_path / "alias.csv")),
        "hardlink": (victim, _link("hardlink", victim, tmp_path / "twin.csv")),
        "inside-folder": (data, data / "labels.csv"),
        "symlink-to-folder": (data, _link("symlink", data, tmp_path / "d") / "labels.csv"),
    }[how]
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    result = runner.invoke(app, [*_args(tiny_model, src, out), "--overwrite"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: --output {out} would overwrite the input {src}: write the labels elsewhere"
    assert victim.read_bytes() == before and sorted(p.name for p in tmp_path.rglob("*")) == listing


def test_an_existing_output_is_replaced_only_with_overwrite(tiny_model: Path, tmp_path: Path) -> None:
    src, out = _input(tmp_path), tmp_path / "done.csv"
    other = tmp_path / "other.csv"
    pd.DataFrame({"id": ["x"], "text": ["another input"]}).to_csv(other, index=False)
    assert runner.invoke(app, _args(tiny_model, src, out)).exit_code == 0
    finished = out.read_bytes()
    refused = runner.invoke(app, _args(tiny_model, other, out))
    assert refused.exit_code == 1 and out.read_bytes() == finished
    assert refused.stderr.strip() == (
        f"error: {out} already holds labels: add --overwrite to replace them, or --resume to add only the ids it lacks"
    )
    both = runner.invoke(app, _args(tiny_model, other, out, "--overwrite", "--resume"))
    assert both.exit_code == 1 and "give one" in both.stderr and out.read_bytes() == finished
    replaced = runner.invoke(app, _args(tiny_model, other, out, "--overwrite"))
    assert replaced.exit_code == 0 and _ids(out) == ["x"]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")  # an empty file holds nothing to lose
    assert runner.invoke(app, _args(tiny_model, other, empty)).exit_code == 0 and _ids(empty) == ["x"]


def test_an_unfinished_output_is_started_again_with_overwrite(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = _input(tmp_path), tmp_path / "labels.parquet"
    _stopped(_args(tiny_model, src, out), 1, Killed, monkeypatch)
    refused = runner.invoke(app, _args(tiny_model, src, out))
    assert refused.exit_code == 1 and "holds an unfinished run: add --resume to continue it, or --overwrite" in (
        refused.stderr
    )
    again = runner.invoke(app, _args(tiny_model, src, out, "--overwrite"))
    assert again.exit_code == 0 and "already there" not in again.stderr
    assert sorted(_ids(out)) == sorted(f"t{i}" for i in range(N) if i != 5)


def test_a_closed_pipe_ends_quietly_and_leaves_a_resumable_output(tiny_model: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "labels.csv"
    n = 3000  # far more JSON than a pipe holds, so the writer meets the closed pipe
    pd.DataFrame({"id": [f"t{i}" for i in range(n)], "text": [f"review {i} " + "word " * 20 for i in range(n)]}).to_csv(
        src, index=False
    )
    command = [sys.executable, "-m", "sentiq", *_args(tiny_model, src, out), "--chunk-size", "500", "--json"]
    shell = " ".join(f"'{c}'" for c in command) + " | head -3; exit ${PIPESTATUS[0]}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    closed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300, env=env)
    assert closed.returncode == 141, closed.stderr
    assert len(closed.stdout.splitlines()) == 3
    (line,) = [s for s in closed.stderr.splitlines() if s.startswith("error:")]
    assert line.startswith("error: standard output was closed; ") and line.endswith("--resume continues")
    assert "Traceback" not in closed.stderr and "BrokenPipe" not in closed.stderr
    kept = int(line.split("; ")[1].split()[0])
    assert 3 <= kept < n and len(_ids(out)) == kept and (tmp_path / "labels.csv.progress").exists()
    resumed = runner.invoke(app, _args(tiny_model, src, out, "--resume", "--chunk-size", "500"))
    assert resumed.exit_code == 0 and sorted(_ids(out)) == sorted(f"t{i}" for i in range(n))
    plain = [sys.executable, "-m", "sentiq", "classify", "-i", str(src), "--model", str(tiny_model), "--json"]
    shell = " ".join(f"'{c}'" for c in plain) + " | head -1; exit ${PIPESTATUS[0]}"
    quiet = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 141 and len(quiet.stdout.splitlines()) == 1
    assert not [s for s in quiet.stderr.splitlines() if "error" in s or "Error" in s]  # no --output: nothing to say


def test_overwrite_without_an_output_and_an_output_folder_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    src = _input(tmp_path)
    alone = runner.invoke(app, ["classify", "-i", str(src), "--model", str(tiny_model), "--overwrite"])
    assert (
        alone.exit_code == 1 and alone.stderr.strip() == "error: --overwrite replaces an --output file: give --output"
    )
    folder = tmp_path / "labels.csv"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    refused = runner.invoke(app, _args(tiny_model, src, folder, "--overwrite"))
    assert refused.exit_code == 1
    assert refused.stderr.strip() == f"error: --output {folder} is a folder; name a .csv, .tsv, .jsonl or .parquet file"
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "mine"
