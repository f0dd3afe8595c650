"""Interruptions, resuming, atomic artifacts and hostile inputs."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sentiq import runs
from sentiq.cli import app

runner = CliRunner()


def _evaluate(tiny_model: Path, data: Path, out: Path, run_id: str, *extra: str):
    args = evaluate_args(tiny_model, data, out, run_id, 12, "--seed", "1", "--batch-size", "2", *extra)
    return runner.invoke(app, args)


def test_interrupted_run_keeps_work_and_resume_matches_uninterrupted(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _evaluate(tiny_model, labelled_csv, tmp_path, "whole").exit_code == 0

    real_append = runs.PredictionLog.append
    calls = {"n": 0}

    def append_then_interrupt(self, rows):
        real_append(self, rows)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.PredictionLog, "append", append_then_interrupt)
    cut = _evaluate(tiny_model, labelled_csv, tmp_path, "cut")
    assert cut.exit_code == 130, cut.output
    assert "interrupted" in cut.output
    folder = tmp_path / "cut"
    assert json.loads((folder / "config.json").read_text())["status"] == "incomplete"
    kept = pd.read_csv(folder / "predictions.partial.csv")
    assert 0 < len(kept) < 12
    assert not (folder / "metrics.json").exists()  # compare never sees a half run
    monkeypatch.setattr(runs.PredictionLog, "append", real_append)

    again = _evaluate(tiny_model, labelled_csv, tmp_path, "cut")
    assert again.exit_code == 1 and "--resume" in again.output

    resumed = _evaluate(tiny_model, labelled_csv, tmp_path, "cut", "--resume")
    assert resumed.exit_code == 0, resumed.output
    a = pd.read_csv(tmp_path / "whole" / "predictions.csv")
    b = pd.read_csv(folder / "predictions.csv")
    pd.testing.assert_frame_equal(a[["id", "gold", "predicted"]], b[["id", "gold", "predicted"]])
    assert (a["p_positive"] - b["p_positive"]).abs().max() < 1e-4
    ma, mb = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("whole", "cut"))
    for key in ("accuracy", "macro_f1", "invalid", "n", "words", "tokens"):
        assert ma[key] == mb[key]
    assert "resume:" in (folder / "run.log").read_text()
    assert not (folder / "predictions.partial.csv").exists()


def test_resume_with_other_settings_is_refused(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    assert _evaluate(tiny_model, labelled_csv, tmp_path, "r").exit_code == 0
    result = _evaluate(tiny_model, labelled_csv, tmp_path, "r", "--resume", "--calibrate", "--max-tokens", "64")
    assert result.exit_code == 1 and "cannot resume r with other settings" in result.output


def test_resume_of_missing_run(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    result = _evaluate(tiny_model, labelled_csv, tmp_path, "ghost", "--resume")
    assert result.exit_code == 1 and "nothing to resume" in result.output


SLOW_EVALUATE = """
import sys, time
from sentiq import runs
real = runs.PredictionLog.append
def slow(self, rows):
    real(self, rows)
    time.sleep(0.3)
runs.PredictionLog.append = slow
from sentiq.cli import main
sys.argv = ["sentiq"] + sys.argv[1:]
main()
"""


def test_sigterm_during_evaluate_exits_130_with_work_on_disk(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "term", 12, "--batch-size", "1")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_EVALUATE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    partial = tmp_path / "term" / "predictions.partial.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not partial.exists() or len(partial.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert len(pd.read_csv(partial)) >= 2


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    runs.write_json(target, {"a": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError):
        runs.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_torn_partial_line_is_dropped(tmp_path: Path) -> None:
    log = runs.PredictionLog(tmp_path)
    log.append([{"id": "a", "gold": "positive", "predicted": "positive", "p_positive": "0.9", "words": 3}])
    log.close()
    with open(tmp_path / runs.PARTIAL, "a") as f:
        f.write("b,negative,neg")  # killed mid-write
    assert list(runs.read_partial(tmp_path)["id"]) == ["a"]


@pytest.mark.parametrize("run_id", ["../escape", "a/../../b", "..", "/abs/path"])
def test_run_ids_cannot_escape_the_output_dir(tmp_path: Path, run_id: str) -> None:
    root = tmp_path / "results"
    try:
        folder = runs.run_dir(root, run_id)
    except runs.RunError:
        return
    assert folder.parent == root.resolve()


def test_unwritable_output_dir(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _evaluate(tiny_model, labelled_csv, blocker, "x")
    assert result.exit_code == 1 and "cannot write to" in result.output


def test_empty_texts_are_skipped_and_counted(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": ["good", "  ", "bad", "", "fine", "meh"], "label": [1, 1, 0, 0, 1, 0]}).to_csv(
        path, index=False
    )
    result = runner.invoke(
        app,
        evaluate_args(tiny_model, path, tmp_path, "e", 4),
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e" / "config.json").read_text())["skipped_empty_texts"] == 2


def test_model_without_chat_template(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(cfg))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    result = runner.invoke(app, ["classify", "nice", "--model", str(plain)])
    assert result.exit_code == 1 and "has no chat template" in result.output


def test_folder_with_broken_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    result = runner.invoke(app, ["classify", "nice", "--model", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("error:") and "Traceback" not in result.output


def test_gguf_without_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    result = runner.invoke(app, ["classify", "nice", "--model", str(gguf)])
    assert result.exit_code == 1 and "pip install 'sentiq[gguf]'" in result.output


def test_classify_output_partial_kept_on_interrupt(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentiq import methods

    real = methods.vote
    calls = {"n": 0}

    def vote_then_interrupt(answers):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(answers)

    monkeypatch.setattr(methods, "vote", vote_then_interrupt)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(f"text {i}" for i in range(6)))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        [
            "classify",
            "--input",
            str(src),
            "--output",
            str(out),
            "--method",
            "zero-shot",
            "--batch-size",
            "1",
            "--model",
            str(tiny_model),
        ],
    )
    assert result.exit_code == 130
    assert not out.exists()
    kept = [json.loads(line) for line in (tmp_path / "out.jsonl.partial").read_text().splitlines()]
    assert len(kept) == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=60))
def test_any_text_gets_a_label_or_a_clear_refusal(tiny_lm, text: str) -> None:
    from sentiq.engine import Engine
    from sentiq.methods import Classifier, MethodConfig
    from sentiq.prompts import clean_text

    clf = Classifier(Engine(tiny_lm), MethodConfig(method="loglik", max_tokens=32))
    if not clean_text(text):
        return  # classify reports empty texts instead of labelling them
    (pred,) = clf.predict([text])
    assert pred.label in ("positive", "negative") and 0.0 <= pred.p_positive <= 1.0


def test_long_texts_are_truncated_with_a_warning_and_a_count(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    texts = ["great " * 300, "dull " * 5, "fine " * 300, "bad " * 4]
    pd.DataFrame({"text": texts, "label": [1, 0, 1, 0]}).to_csv(path, index=False)
    result = runner.invoke(
        app,
        evaluate_args(tiny_model, path, tmp_path, "long", 4, "--max-tokens", "32"),
    )
    assert result.exit_code == 0, result.output
    assert "2 texts were longer than --max-tokens" in result.output
    assert json.loads((tmp_path / "long" / "metrics.json").read_text())["truncated"] == 2
    assert "truncated 2 texts" in (tmp_path / "long" / "run.log").read_text()


def test_out_of_memory_on_a_single_text_is_one_line(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from sentiq.engine import Engine

    def no_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(Engine, "_score_batch", no_memory)
    result = runner.invoke(app, ["classify", "nice film", "--model", str(tiny_model)])
    assert result.exit_code == 1 and "out of memory on one text" in result.output and "Traceback" not in result.output


def test_pickled_weights_are_refused_by_default(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model, pickled)
    weights = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    torch.save(weights, pickled / "pytorch_model.bin")
    result = runner.invoke(app, ["classify", "nice", "--model", str(pickled)])
    assert result.exit_code == 1 and result.output.startswith("error:") and "Traceback" not in result.output
