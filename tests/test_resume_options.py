"""`evaluate --resume RUN` with options beside it: they are laid over what the run recorded, so only a given
option that differs from the record is a difference (named once), and the options that cannot change a
result may differ and are recorded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli import app
from sentiq.io import resuming, runs

runner = CliRunner()


def _cut_run(tiny_model: Path, data: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A zero-shot run of 12 texts on `data`, interrupted after its first batch."""
    real, calls = runs.Run.append, {"n": 0}

    def append_then_interrupt(self, rows):
        real(self, rows)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.Run, "append", append_then_interrupt)
    args = ["evaluate", "--model", str(tiny_model), "--dataset", str(data), "--n", "12", "--method", "zero-shot"]
    cut = runner.invoke(app, [*args, "--batch-size", "2", "--output-dir", str(out), "--run-id", "trial"])
    assert cut.exit_code == 130, cut.output
    monkeypatch.undo()
    return out / "trial"


def test_the_runs_own_model_beside_resume_continues_it(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _cut_run(tiny_model, labelled_csv, tmp_path, monkeypatch)
    given = ["--model", str(tiny_model), "--output-dir", str(tmp_path), "--batch-size", "3", "--device", "cpu"]
    resumed = runner.invoke(app, ["evaluate", "--resume", "trial", *given])
    assert resumed.exit_code == 0, resumed.output
    config = json.loads((folder / "config.json").read_text())
    assert config["status"] == "complete" and config["method"] == "zero-shot" and config["n"] == 12
    assert [(c["setting"], c["was"], c["now"]) for c in config["changed_on_resume"]] == [("batch_size", 2, 3)]
    assert "resumed with batch_size 3 (the run began with 2)" in " ".join(resumed.output.split())


def test_only_a_given_option_that_differs_is_named_once(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cut_run(tiny_model, labelled_csv, tmp_path, monkeypatch)
    base = ["evaluate", "--resume", "trial", "--output-dir", str(tmp_path), "--model", str(tiny_model)]
    other = runner.invoke(app, [*base, "--max-new-tokens", "3", "--n", "10"])
    assert other.exit_code == 1
    said = " ".join(other.output.split())
    assert "max_new_tokens was 8, now 3" in said and "n was 12, now 10" in said
    assert said.count("max_new_tokens was") == 1 and "source was" not in said and "method was" not in said
    method = runner.invoke(app, [*base, "--method", "loglik"])
    assert method.exit_code == 1 and "run trial measured zero-shot, not loglik" in method.output
    same = runner.invoke(app, [*base, "--method", "zero-shot", "--n", "12", "--dataset", str(labelled_csv)])
    assert same.exit_code == 0, same.output


def test_resume_run_in_python_takes_the_same_options(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cut_run(tiny_model, labelled_csv, tmp_path, monkeypatch)
    with pytest.raises(sentiq.OptionError, match="unknown resume option 'batchsize'. Did you mean 'batch_size'"):
        sentiq.resume_run("trial", tmp_path, batchsize=2)
    with pytest.raises(sentiq.RunError, match="cannot resume trial with other settings: n was 12, now 11"):
        sentiq.resume_run("trial", tmp_path, n=11)
    with pytest.raises(sentiq.OptionError, match="run trial measured zero-shot, not loglik: leave method out"):
        sentiq.resume_run("trial", tmp_path, methods="loglik")
    with pytest.raises(sentiq.OptionError, match="unknown method 'zero_shot'"):
        sentiq.resume_run("trial", tmp_path, methods=["zero_shot"])
    with pytest.raises(TypeError, match="model must be a string"):
        sentiq.resume_run("trial", tmp_path, model=5)
    with pytest.raises(sentiq.OptionError, match="n must be at least 1"):
        sentiq.resume_run("trial", tmp_path, n=0)
    evaluation = sentiq.resume_run("trial", tmp_path, model=str(tiny_model), device="cpu", methods="zero-shot")
    assert evaluation.runs[0].quality.n == 12 and evaluation.runs[0].config["status"] == "complete"


def test_differences_are_each_named_once() -> None:
    before = {"method": "zero-shot", "method_settings": {"method": "zero-shot", "k": 0}}
    now = {"method": "loglik", "method_settings": {"method": "loglik", "k": 0}}
    assert resuming.differences(before, now, ["method", "method_settings"]) == ["method was 'zero-shot', now 'loglik'"]


def test_a_ray_run_resumes_on_ray_unless_told_otherwise(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentiq.workflows.resuming import laid_over, recorded_settings

    folder = _cut_run(tiny_model, labelled_csv, tmp_path, monkeypatch)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "engine": {"name": "ray", "workers": 2}}))
    recorded = recorded_settings(tmp_path, "trial")
    assert recorded.ray.backend == "ray" and recorded.methods[0].method == "zero-shot"
    here = laid_over(recorded, {"backend": "local"})  # Ray = local: where it runs may change
    assert here.ray.backend == "local" and here.n == recorded.n
    assert laid_over(recorded, {"workers": 3}).ray == replace(recorded.ray, workers=3)
    with pytest.raises(sentiq.OptionError, match="unknown backend 'spark'"):
        laid_over(recorded, {"backend": "spark"})
    tuned = {**config, "tuned": "prompt classifier"}
    (folder / "config.json").write_text(json.dumps(tuned))
    with pytest.raises(sentiq.OptionError, match="used --tuned choices: resume it with the options it began with"):
        recorded_settings(tmp_path, "trial")
