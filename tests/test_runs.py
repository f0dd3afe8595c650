"""A run's life: interrupted (Ctrl-C, SIGTERM, SIGKILL, a torn write, a failure), resumed, finished,
and resumed again after it finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

from sentiq.cli import app
from sentiq.io import resuming, runs

runner = CliRunner()
SAME_METRICS = ("accuracy", "macro_f1", "invalid", "n", "words", "tokens")


def _evaluate(tiny_model: Path, data: Path, out: Path, run_id: str, *extra: str):
    args = evaluate_args(tiny_model, data, out, run_id, 12, "--seed", "1", "--batch-size", "2", *extra)
    return runner.invoke(app, args)


def _resume(tiny_model: Path, data: Path, out: Path, run_id: str):
    """`--resume RUN_ID`: the run named by the resume option itself."""
    args = evaluate_args(tiny_model, data, out, run_id, 12, "--seed", "1", "--batch-size", "2")
    i = args.index("--run-id")
    return runner.invoke(app, [*args[:i], *args[i + 2 :], "--resume", run_id])


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    real = runs.Run.append
    calls = {"n": 0}

    def append_then_interrupt(self, rows):
        real(self, rows)
        calls["n"] += 1
        if calls["n"] == batches:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.Run, "append", append_then_interrupt)


def _stopped_after_two_batches(
    tiny_model: Path, data: Path, out: Path, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run interrupted (exit 130) after its second batch was saved."""
    _interrupt_after(monkeypatch, 2)
    assert _evaluate(tiny_model, data, out, run_id).exit_code == 130
    monkeypatch.undo()


def _same_as(folder: Path, reference: Path) -> None:
    """Every id once, and the predictions and metrics of an uninterrupted run."""
    a = pd.read_csv(reference / "predictions.csv", dtype={"id": str})
    b = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
    assert b["id"].is_unique and len(b) == 12
    pd.testing.assert_frame_equal(a[["id", "gold", "predicted"]], b[["id", "gold", "predicted"]])
    assert (a["p_positive"] - b["p_positive"]).abs().max() < 1e-4
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (reference, folder))
    assert {k: ma[k] for k in SAME_METRICS} == {k: mb[k] for k in SAME_METRICS}
    assert json.loads((folder / "config.json").read_text())["status"] == "complete"
    assert not (folder / runs.PARTIAL).exists()


@pytest.fixture
def whole(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> Path:
    """An uninterrupted run to compare against."""
    assert _evaluate(tiny_model, labelled_csv, tmp_path, "whole").exit_code == 0
    return tmp_path / "whole"


def test_interrupted_run_keeps_work_and_resume_matches_uninterrupted(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, whole: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_after(monkeypatch, 2)
    cut = _evaluate(tiny_model, labelled_csv, tmp_path, "cut")
    assert cut.exit_code == 130, cut.output
    assert "interrupted" in cut.output and "--resume cut" in cut.output
    folder = tmp_path / "cut"
    assert json.loads((folder / "config.json").read_text())["status"] == "interrupted"
    kept = len((folder / runs.PARTIAL).read_text().splitlines())
    assert 2 <= kept < 12  # two batches
    assert not (folder / "metrics.json").exists()  # compare never sees a half run
    monkeypatch.undo()

    again = _evaluate(tiny_model, labelled_csv, tmp_path, "cut")
    assert again.exit_code == 1 and "--resume" in again.output

    resumed = _evaluate(tiny_model, labelled_csv, tmp_path, "cut", "--resume")  # the --run-id X --resume form
    assert resumed.exit_code == 0, resumed.output
    _same_as(folder, whole)
    assert f"resume: {kept} predictions on disk" in (folder / "run.log").read_text()


def test_torn_last_line_is_cut_before_resuming(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, whole: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stopped_after_two_batches(tiny_model, labelled_csv, tmp_path, "torn", monkeypatch)
    partial = tmp_path / "torn" / runs.PARTIAL
    lines = partial.read_text().splitlines(keepends=True)
    with open(partial, "a") as f:
        f.write(lines[0][: len(lines[0]) // 2])  # a kill in the middle of writing a row
    resumed = _resume(tiny_model, labelled_csv, tmp_path, "torn")
    assert resumed.exit_code == 0, resumed.output
    assert "1 torn or unreadable line(s) dropped" in resumed.output
    _same_as(tmp_path / "torn", whole)
    assert "torn or unreadable" in (tmp_path / "torn" / "run.log").read_text()


def test_resuming_a_complete_run_changes_nothing(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, whole: Path
) -> None:
    before = {p.name: p.read_bytes() for p in whole.iterdir()}
    result = _resume(tiny_model, labelled_csv, tmp_path, "whole")
    assert result.exit_code == 0, result.output
    assert "whole was already complete; nothing changed" in result.output
    assert {p.name: p.read_bytes() for p in whole.iterdir()} == before


def test_resume_with_other_settings_is_refused(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    assert _evaluate(tiny_model, labelled_csv, tmp_path, "r").exit_code == 0
    result = _evaluate(
        tiny_model, labelled_csv, tmp_path, "r", "--resume", "--calibrate", "contextual", "--max-tokens", "64"
    )
    assert result.exit_code == 1 and "cannot resume r with other settings: " in result.output
    for difference in ("calibrate was 'none', now 'contextual'", "max_tokens was 4096, now 64"):  # every one named
        assert difference in " ".join(result.output.split())


def test_resume_of_missing_run(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    result = _resume(tiny_model, labelled_csv, tmp_path, "ghost")
    assert result.exit_code == 1 and "nothing to resume" in result.output


def test_a_failure_mid_run_is_recorded_and_resumable(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, whole: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runs.Run.append
    calls = {"n": 0}

    def append_then_fail(self, rows):
        real(self, rows)
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device lost")

    monkeypatch.setattr(runs.Run, "append", append_then_fail)
    result = _evaluate(tiny_model, labelled_csv, tmp_path, "broke")
    assert result.exit_code == 1 and "device lost" in result.output
    config = json.loads((tmp_path / "broke" / "config.json").read_text())
    assert config["status"] == "failed" and config["error"] == "device lost"
    monkeypatch.undo()
    assert _resume(tiny_model, labelled_csv, tmp_path, "broke").exit_code == 0
    _same_as(tmp_path / "broke", whole)


SLOW_EVALUATE = """
import sys, time
from sentiq.io import runs
real = runs.Run.append
def slow(self, rows):
    real(self, rows)
    time.sleep(0.3)
runs.Run.append = slow
from sentiq.cli import main
sys.argv = ["sentiq"] + sys.argv[1:]
main()
"""


def _start_slow(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-c", SLOW_EVALUATE, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_lines(partial: Path, lines: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and len(partial.read_text().splitlines()) >= lines:
            return
        time.sleep(0.05)
    pytest.fail(f"the run never wrote {lines} predictions: {proc.communicate()[1]}")


def test_sigterm_during_evaluate_exits_130_with_work_on_disk(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    proc = _start_slow(evaluate_args(tiny_model, labelled_csv, tmp_path, "term", 12, "--batch-size", "1"))
    _wait_for_lines(tmp_path / "term" / runs.PARTIAL, 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume term" in err and "Traceback" not in err
    assert json.loads((tmp_path / "term" / "config.json").read_text())["status"] == "interrupted"


def test_sigkill_mid_run_then_resume(tiny_model: Path, labelled_csv: Path, tmp_path: Path, whole: Path) -> None:
    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "killed", 12, "--seed", "1", "--batch-size", "2")
    proc = _start_slow(args)
    _wait_for_lines(tmp_path / "killed" / runs.PARTIAL, 3, proc)
    proc.kill()  # SIGKILL: no handler runs, the status stays 'running'
    proc.communicate(timeout=60)
    assert json.loads((tmp_path / "killed" / "config.json").read_text())["status"] == "running"
    resumed = _resume(tiny_model, labelled_csv, tmp_path, "killed")
    assert resumed.exit_code == 0, resumed.output
    _same_as(tmp_path / "killed", whole)


@pytest.mark.parametrize("run_id", ["../escape", "a/../../b", "..", "/abs/path"])
def test_run_ids_cannot_escape_the_output_dir(tmp_path: Path, run_id: str) -> None:
    root = tmp_path / "results"
    try:
        folder = runs.run_path(root, run_id)
    except runs.RunError:
        return
    assert folder.parent == root.resolve()


def test_unwritable_output_dir(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _evaluate(tiny_model, labelled_csv, blocker, "x")
    assert result.exit_code == 1 and "cannot write to" in result.output


def test_a_model_under_home_is_recorded_as_home_relative(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sentiq.core.models import home_relative

    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_relative(str(tmp_path / ".cache" / "model")) == "~/.cache/model"
    assert (
        home_relative("/elsewhere/model") == "/elsewhere/model"
        and home_relative(str(tmp_path) + "x") == str(tmp_path) + "x"
    )
    before = {"model": str(tmp_path / "m"), "dtype": "float32"}
    resuming.same_work("r", before, {**before, "model": "~/m"})  # the same folder, written two ways
    with pytest.raises(runs.RunError, match="model was"):
        resuming.same_work("r", before, {**before, "model": "~/other"})


def test_resume_by_run_id_alone_reads_the_run_s_settings_back(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, whole: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stopped_after_two_batches(tiny_model, labelled_csv, tmp_path, "cut", monkeypatch)
    alone = runner.invoke(app, ["evaluate", "--resume", "cut", "--output-dir", str(tmp_path)])  # no other option
    assert alone.exit_code == 0, alone.output
    _same_as(tmp_path / "cut", whole)
    again = runner.invoke(app, ["evaluate", "--resume", "cut", "--output-dir", str(tmp_path)])
    assert again.exit_code == 0 and "cut was already complete; nothing changed" in again.output
    ghost = runner.invoke(app, ["evaluate", "--resume", "ghost", "--output-dir", str(tmp_path)])
    assert ghost.exit_code == 1 and f"no run ghost under {tmp_path}: nothing to resume" in ghost.output
    missing = runner.invoke(app, ["evaluate", "--resume", "cut", "--output-dir", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "nothing to resume" in missing.output
    outside = runner.invoke(app, ["evaluate", "--resume", "..", "--output-dir", str(tmp_path / "cut")])
    assert outside.exit_code == 1 and "no usable characters" in outside.output  # never a folder above
    given = ["--model", str(tiny_model), "--dataset", str(labelled_csv), "--n", "4"]  # options given: they must match
    other = runner.invoke(app, ["evaluate", "--resume", "cut", "--output-dir", str(tmp_path), *given])
    assert other.exit_code == 1 and "cannot resume cut with other settings: " in other.output
    assert "n was 12, now 4" in " ".join(other.output.split())


def test_resume_by_run_id_alone_finds_every_method_s_run(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    two = _evaluate(tiny_model, labelled_csv, tmp_path, "two", "--method", "loglik", "--method", "zero-shot")
    assert two.exit_code == 0, two.output
    (tmp_path / "two-zero-shot" / "metrics.json").unlink()  # as if stopped before its end
    config = json.loads((tmp_path / "two-zero-shot" / "config.json").read_text())
    (tmp_path / "two-zero-shot" / "config.json").write_text(json.dumps({**config, "status": "interrupted"}))
    alone = runner.invoke(app, ["evaluate", "--resume", "two", "--output-dir", str(tmp_path), "--json"])
    assert alone.exit_code == 0, alone.output
    assert json.loads((tmp_path / "two-zero-shot" / "config.json").read_text())["status"] == "complete"
    assert (tmp_path / "two-zero-shot" / "metrics.json").is_file()


@pytest.mark.parametrize("method", ["loglik", "k-shot"])
def test_a_run_reads_its_prompt_file_once(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    import sentiq
    from sentiq.methods import plan, prompts

    prompt = tmp_path / "mine.toml"
    prompt.write_text((Path(prompts.__file__).parent / "prompts" / "classifier.toml").read_text())
    reads: list[str] = []
    read, draw = prompts._read, plan.draw_demonstrations
    monkeypatch.setattr(prompts, "_read", lambda path, where: reads.append(where) or read(path, where))
    draws: list[int] = []
    monkeypatch.setattr(plan, "draw_demonstrations", lambda *a: draws.append(1) or draw(*a))
    options = {"k": 1, "scoring": "loglik"} if method == "k-shot" else {}
    sentiq.evaluate(str(tiny_model), method, dataset=str(labelled_csv), n=4, prompt=str(prompt), **options)
    assert reads.count(str(prompt)) == 1  # once per run, not per stage that needs it
    assert len(draws) == (1 if method == "k-shot" else 0)  # the demonstrations drawn once, recorded as shown
