"""tune-sampling, tune-prompt and compare as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

from sentiq.cli import app
from sentiq.cli.tune import parse_grid

runner = CliRunner()


def test_tune_sampling_writes_grid_and_evaluate_uses_it(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    _tune_prompt(tiny_model, tmp_path, "--prompts", "classifier", "--ensemble", "0")  # --tuned needs both
    result = runner.invoke(
        app,
        [
            "tune-sampling",
            "--model",
            str(tiny_model),
            "--temperatures",
            "0.2,0.7",
            "--top-ks",
            "5,50",
            "--n",
            "4",
            "--prompt",
            "one-word",
            "--output-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "tuning" / tiny_model.name / "sampling"
    grid = pd.read_csv(folder / "grid.csv")
    assert len(grid) == 4 and set(grid["temperature"]) == {0.2, 0.7} and set(grid["top_k"]) == {5, 50}
    best = json.loads((folder / "best.json").read_text())
    ranked = grid.sort_values(["macro_f1", "invalid", "accuracy"], ascending=[False, True, False], kind="stable")
    assert (best["temperature"], best["top_k"]) == (ranked.iloc[0]["temperature"], ranked.iloc[0]["top_k"])
    assert (folder / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "chosen: temperature" in result.output and best["prompt"] == "one-word"
    (kept,) = (folder / "searches").iterdir()  # every search kept beside the latest choice
    assert json.loads((kept / "best.json").read_text()) == best and (kept / "grid.csv").is_file()
    assert ("answered invalid on" in result.output) == (2 * best["invalid"] > best["n"])

    result = runner.invoke(
        app,
        evaluate_args(
            tiny_model, labelled_csv, tmp_path, "tuned", 4, "--method", "sampling", "--tuned", "--samples", "1"
        ),
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "tuned" / "config.json").read_text())["method_settings"]
    assert (settings["temperature"], settings["top_k"]) == (best["temperature"], best["top_k"])
    report = tmp_path / "r.html"  # the sampling search's choice has a prompt and no calibration
    shown = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--html", str(report)])
    assert shown.exit_code == 0, shown.output
    assert f"prompt one-word, temperature {best['temperature']}, top-k {best['top_k']}" in report.read_text()


def test_tune_sampling_refuses_an_ensemble(tiny_model: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["tune-sampling", "--model", str(tiny_model), "--prompt", "classifier,reply", "--output-dir", str(tmp_path)],
    )
    assert result.exit_code == 1 and "one prompt" in result.output
    assert not (tmp_path / "tuning").exists()


def test_tuned_without_tuning_says_what_to_run(tiny_model: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--model", str(tiny_model), "--method", "sampling", "--tuned", "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "run 'sentiq tune-prompt'" in result.output
    _tune_prompt(tiny_model, tmp_path, "--prompts", "classifier", "--ensemble", "0")
    result = runner.invoke(
        app, ["evaluate", "--model", str(tiny_model), "--method", "sampling", "--tuned", "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "run 'sentiq tune-sampling'" in result.output


def _tune_prompt(model: Path, out: Path, *more: str):
    result = runner.invoke(app, ["tune-prompt", "--model", str(model), "--n", "4", "--output-dir", str(out), *more])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(
    "text,kind,message", [("0,0.5", float, "above 0"), ("5,x", int, "comma-separated"), ("0", int, "at least 1")]
)
def test_bad_grids(text: str, kind: type, message: str) -> None:
    from sentiq.errors import OptionError

    with pytest.raises(OptionError, match=message):
        parse_grid(text, kind, (1,), "--grid")


def _fake_run(
    root: Path,
    run_id: str,
    model: str,
    method: str,
    f1: float,
    acc: float,
    n: int = 4,
    seed: int = 0,
    predicted: list[str] | None = None,
) -> None:
    folder = root / run_id
    folder.mkdir(parents=True)
    config = {
        "status": "complete",
        "model_label": model,
        "method": method,
        "method_title": method,
        "n": n,
        "sample_seed": seed,
        "dataset": {"source": "imdb-sample"},
        "device": "cpu",
    }
    metrics = {"n": n, "accuracy": acc, "macro_f1": f1, "invalid": 0, "words_per_s": 100.0 * f1}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    predicted = predicted or ["positive", "negative", "positive", "negative"]
    pd.DataFrame({"id": ["a", "b", "c", "d"], "gold": ["positive", "negative"] * 2, "predicted": predicted}).to_csv(
        folder / "predictions.csv", index=False
    )


def test_compare_ranks_warns_and_measures_agreement(tmp_path: Path) -> None:
    scores = [
        (0.91, 0.90),
        (0.95, 0.94),
        (0.80, 0.85),
        (0.80, 0.86),
        (0.70, 0.70),
        (0.99, 0.98),
        (0.60, 0.65),
        (0.85, 0.85),
    ]
    for i, (f1, acc) in enumerate(scores):
        _fake_run(tmp_path, f"run{i}", f"m{i % 2}", ["loglik", "zero-shot", "k-shot", "sampling"][i % 4], f1, acc)
    _fake_run(
        tmp_path,
        "other-sample",
        "m0",
        "loglik",
        0.5,
        0.5,
        seed=9,
        predicted=["negative", "negative", "negative", "negative"],
    )
    (tmp_path / "incomplete").mkdir()
    (tmp_path / "incomplete" / "config.json").write_text('{"status": "incomplete"}')
    result = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ranked = [r["run_id"] for r in data["runs"]]
    assert ranked == ["run5", "run1", "run0", "run7", "run3", "run2", "run4", "run6", "other-sample"]
    assert [r["rank"] for r in data["runs"]] == [1] * 9  # four texts a run: no interval excludes another
    assert all(r["acc_low"] < r["accuracy"] < r["acc_high"] for r in data["runs"])
    by_speed = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--metric", "words_per_s", "--json"])
    assert [r["rank"] for r in json.loads(by_speed.stdout)["runs"]] == list(range(1, 10))  # speed: plain ranks
    assert any("2 different samples" in w for w in data["warnings"])
    (agreement,) = data["agreement"].values()  # only the shared sample has several runs
    assert set(agreement) == {f"run{i}" for i in range(8)}  # keyed by run id, every run though all share rank 1
    assert all(v == 1.0 for row in agreement.values() for v in row.values())
    assert any("incomplete: incomplete, not complete" in w for w in data["warnings"])  # said, not skipped
    assert not (tmp_path / "comparison.csv").exists()  # printed; written only when asked
    written = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--write"])
    assert written.exit_code == 0 and f"saved {tmp_path / 'comparison.csv'}" in " ".join(written.output.split())
    assert (tmp_path / "comparison.csv").exists() and (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    human = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--metric", "accuracy"])
    assert human.exit_code == 0 and "warning:" in human.output and "run5" in human.output


def test_files_of_other_versions_are_described_not_fatal(tiny_model: Path, tmp_path: Path) -> None:
    _fake_run(tmp_path, "good", "m0", "loglik", 0.9, 0.9)  # predictions without latencies, as before 0.2
    _fake_run(tmp_path, "old", "m0", "loglik", 0.8, 0.8)
    (tmp_path / "old" / "metrics.json").write_text(json.dumps({"n": 4, "acc": 0.8}))  # another version's names
    _fake_run(tmp_path, "torn", "m0", "loglik", 0.8, 0.8)
    (tmp_path / "torn" / "metrics.json").write_text('{"n": 4, "accur')
    searches = {
        "prompt": {"prompt": "one-word", "accuracy": 0.9, "n": 20},  # no calibration recorded
        "sampling": {"temperature": 0.2, "top_k": 2, "samples": 1, "n": 20},
        "k-shot-prompt": ["not", "a", "choice"],
    }
    for kind, best in searches.items():
        folder = tmp_path / "tuning" / "m0" / kind
        folder.mkdir(parents=True)
        (folder / "best.json").write_text(json.dumps(best))
        (folder / "heatmap.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    report = tmp_path / "r.html"
    result = runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--html", str(report)])
    assert result.exit_code == 0, result.output
    assert "old: metrics.json has no 'accuracy' (another version's run?); left out" in result.stderr
    assert "torn: metrics.json cannot be read (JSONDecodeError); left out" in result.stderr
    page = report.read_text()
    assert "prompt one-word (accuracy 0.900, n=20)" in page and "temperature 0.2, top-k 2 (n=20)" in page
    assert "a choice file of an unknown form" in page
    tuned = runner.invoke(
        app, ["classify", "fine", "--model", str(tiny_model), "--tuned", "--results-dir", str(tmp_path / "m")]
    )
    assert tuned.exit_code == 1 and "no tuned setting at" in tuned.stderr
    folder = tmp_path / "m" / "tuning" / tiny_model.name / "prompt"
    folder.mkdir(parents=True)
    (folder / "best.json").write_text(json.dumps(searches["prompt"]))
    tuned = runner.invoke(
        app, ["classify", "fine", "--model", str(tiny_model), "--tuned", "--results-dir", str(tmp_path / "m")]
    )
    assert tuned.exit_code == 1
    assert tuned.stderr.strip() == (
        f"error: {folder / 'best.json'} has no 'calibrate' (saved by another version or search?): "
        "run 'sentiq tune-prompt' again"
    )


def test_compare_with_no_runs(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no complete runs" in result.output


@pytest.mark.parametrize("columns", [80, 200])
def test_compare_at_any_width_cuts_no_number_and_no_run_id(tmp_path: Path, columns: int) -> None:
    long_ids = [f"20261202-073000-qwen2.5-coder-0.5b-instruct-{m}" for m in ("loglik", "zero-shot")]
    for run_id, (f1, acc) in zip(long_ids, [(0.912, 0.913), (0.871, 0.874)]):
        _fake_run(tmp_path, run_id, "qwen2.5-coder-0.5b-instruct", run_id.rsplit("-", 1)[-1], f1, acc)
    result = runner.invoke(app, ["compare", "--results-dir", str(tmp_path)], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines if "#1 " not in line and "#2 " not in line)
    assert all(any(run_id in line for line in lines) for run_id in long_ids)  # whole, on one line
    assert "0.913" in result.stdout and "0.874" in result.stdout and "…" not in result.stdout
    assert ("dataset" in result.stdout) == (columns >= 160)
    agreement = result.stdout.split("agreement on the same reviews")[1]
    assert "#1 " in agreement and "#2" in agreement  # runs named as the table numbers them


def _edit_config(folder: Path, **values: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **values}))


def test_one_sample_reached_by_two_paths_is_one_sample(tmp_path: Path) -> None:
    for run_id, source in (("a", "../shared/data/imdb-test.parquet"), ("b", "/srv/data/imdb-test.parquet")):
        _fake_run(tmp_path, run_id, "m0", "loglik", 0.9, 0.9)
        _edit_config(tmp_path / run_id, dataset={"source": source}, sample_digest="0123456789abcdef")
    _fake_run(tmp_path, "c", "m0", "zero-shot", 0.8, 0.8)  # another file of the same name, other texts
    _edit_config(tmp_path / "c", dataset={"source": "imdb-test.parquet"}, sample_digest="fedcba9876543210")
    result = json.loads(runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"]).stdout)
    (warning,) = [w for w in result["warnings"] if "samples" in w]
    assert "2 different samples" in warning and "(2 runs)" in warning and "(1 run)" in warning


def test_speeds_from_different_machines_are_flagged(tmp_path: Path) -> None:
    cpu = {"cpu": "AMD EPYC 9B14", "cpus": 2, "cpu_flags": ["avx2", "avx512_bf16"]}
    for run_id, machine, device in (
        ("cpu-run", cpu, "cpu"),
        ("gpu-run", {**cpu, "gpu": "NVIDIA H200"}, "cuda:0"),
        ("old-run", {"platform": "Linux", "cpus": 2}, "cpu"),
    ):
        _fake_run(tmp_path, run_id, "m0", "loglik", 0.9, 0.9)
        _edit_config(tmp_path / run_id, machine=machine, device=device)
    result = json.loads(runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"]).stdout)
    (warning,) = [w for w in result["warnings"] if "machines" in w]
    assert "NVIDIA H200 (1 run)" in warning and "AMD EPYC 9B14 (2 cores, avx2,avx512_bf16) (1 run)" in warning
    assert "1 run recorded no machine" in warning
    same = tmp_path / "same"
    _fake_run(same, "x", "m0", "loglik", 0.9, 0.9)
    _edit_config(same / "x", machine=cpu)
    assert not [
        w
        for w in json.loads(runner.invoke(app, ["compare", "--results-dir", str(same), "--json"]).stdout)["warnings"]
        if "machines" in w
    ]


def test_narrow_tables_name_models_without_their_shared_family() -> None:
    from sentiq.cli.tables import short_models

    labels = ["qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct"]
    assert short_models(labels) == ("qwen2.5-coder-", ["1.5b", "0.5b", "0.5b"])
    assert short_models(["0.5b", "1.5b"]) == ("", ["0.5b", "1.5b"])
    assert short_models(["qwen2.5-0.5b-instruct"]) == ("", ["qwen2.5-0.5b"])  # one model: nothing to take away


def test_runs_of_other_label_sets_are_ranked_apart(tmp_path: Path) -> None:
    _fake_run(tmp_path, "binary-good", "m0", "loglik", 0.95, 0.95)
    _fake_run(tmp_path, "binary-poor", "m0", "zero-shot", 0.70, 0.70)
    _fake_run(tmp_path, "three-way", "m0", "loglik", 0.60, 0.60)
    _edit_config(tmp_path / "three-way", labels=["negative", "neutral", "positive"])
    result = json.loads(runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--json"]).stdout)
    rows = {r["run_id"]: r for r in result["runs"]}
    assert rows["three-way"]["rank"] == 1 and rows["binary-good"]["rank"] == 1  # each first in its own set
    assert (
        rows["three-way"]["labels"] == "negative,neutral,positive"
        and rows["binary-poor"]["labels"] == "positive,negative"
    )
    assert any("2 label sets" in w and "ranked apart" in w for w in result["warnings"])


def test_a_choice_of_any_version_reads_as_one_typed_record() -> None:
    from sentiq.api import PromptChoice, SamplingChoice

    old = PromptChoice.of({"prompt": "reply:capital", "calibrate": "batch"})  # 0.2: no ending, criterion, generation
    assert (old.prompt, old.calibrate, old.tail, old.criterion, old.generation) == (
        "reply:capital",
        "batch",
        0,
        "accuracy",
        None,
    )
    assert old.for_method(scores_labels=False) is old  # one choice for every method
    new = PromptChoice.of(
        {
            "prompt": "a,b",
            "prompt_names": "a,b",
            "calibrate": "none",
            "tail": 80,
            "criterion": "macro_recall",
            "macro_recall": 0.7,
            "top_macro_recall": 0.72,
            "baseline": {"prompt": "classifier", "calibrate": "none", "macro_recall": 0.6},
            "generation": {"prompt": "b", "calibrate": "contextual", "macro_recall": 0.65, "top_macro_recall": 0.66},
        }
    )
    assert (new.score, new.top, new.baseline, new.tail) == (0.7, 0.72, ("classifier", 0.6), 80)
    assert new.for_method(scores_labels=True) is new
    generated = new.for_method(scores_labels=False)
    assert (generated.prompt, generated.calibrate, generated.criterion, generated.score) == (
        "b",
        "contextual",
        "macro_recall",
        0.65,
    )
    sampling = SamplingChoice.of({"temperature": 0.3, "top_k": 7})
    assert (sampling.temperature, sampling.top_k, sampling.invalid) == (0.3, 7, 0)
