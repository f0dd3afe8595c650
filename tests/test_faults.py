"""Interruptions, resuming, atomic artifacts and hostile inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import evaluate_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sentiq.cli import app
from sentiq.io import files

runner = CliRunner()


def _evaluate(tiny_model: Path, data: Path, out: Path, run_id: str, *extra: str):
    args = evaluate_args(tiny_model, data, out, run_id, 12, "--seed", "1", "--batch-size", "2", *extra)
    return runner.invoke(app, args)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    files.write_json(target, {"a": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError):
        files.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


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


def test_interrupted_classify_output_resumes(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiq.methods import runner as methods

    real = methods.vote
    calls = {"n": 0}

    def vote_then_interrupt(answers, labels, sampled):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(answers, labels, sampled)

    monkeypatch.setattr(methods, "vote", vote_then_interrupt)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(f"text {i}" for i in range(6)))
    out = tmp_path / "out.jsonl"
    args = ["classify", "--input", str(src), "--output", str(out), "--method", "zero-shot", "--batch-size", "1"]
    args += ["--model", str(tiny_model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert "2 labels are in" in result.output and "--resume continues" in result.output
    assert "evaluate --resume" not in result.output  # the message fits the command
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == 2 and (tmp_path / "out.jsonl.progress").exists()
    monkeypatch.undo()
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [str(i) for i in range(6)]
    assert rows[:2] == kept and not (tmp_path / "out.jsonl.progress").exists()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=60))
def test_any_text_gets_a_label_or_a_clear_refusal(tiny_lm, text: str) -> None:
    from sentiq.core.engine import Engine
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner
    from sentiq.settings import MethodConfig
    from sentiq.text import clean_text

    clf = make_runner(Engine(tiny_lm), plan_method(MethodConfig(method="loglik", max_tokens=32)))
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
    assert "2 texts longer than --max-tokens lost their middle" in result.output
    assert json.loads((tmp_path / "long" / "metrics.json").read_text())["truncated"] == 2
    assert "truncated 2 texts" in (tmp_path / "long" / "run.log").read_text()


def test_out_of_memory_on_a_single_text_is_one_line(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from sentiq.core.engine import Engine

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
