"""The commands as a user runs them: exit codes, one-line errors, artifacts and their contents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
import typer
from helpers import evaluate_args
from typer.testing import CliRunner

from sentiq.cli import app

runner = CliRunner()


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), input=input, env=env)


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any(line.startswith("error:") and fragment in line for line in lines), result.output
    assert "Traceback" not in result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("sentiq ")


def test_help_does_not_import_torch() -> None:
    code = "import sys, sentiq.cli; sys.exit(1 if 'torch' in sys.modules or 'sklearn' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "sentiq", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "evaluate" in out.stdout and "classify" in out.stdout


def test_classify_json_one_object_per_text(tiny_model: Path) -> None:
    result = run("classify", "An absolute delight.", "A dull mess.", "--model", str(tiny_model), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["An absolute delight.", "A dull mess."]
    assert all(r["label"] in ("positive", "negative") and 0 <= r["p_positive"] <= 1 for r in rows)


def test_classify_reads_stdin_and_writes_output(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    result = run("classify", "-", "--model", str(tiny_model), "--output", str(out), input="good film\nbad film\n")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert list(df["text"]) == ["good film", "bad film"] and set(df["label"]) <= {"positive", "negative"}
    assert not (tmp_path / "labels.csv.partial").exists()


def test_blank_lines_are_reported_by_line_number_and_skipped(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_bytes(b"good film\r\n\r\nbad film\r\n\r\n")  # a CRLF file ending in a blank line
    result = run("classify", "--input", str(path), "--model", str(tiny_model), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["good film", "bad film"]
    assert "skipped 2 empty texts: id 1 at line 2, id 3 at line 4" in result.stderr  # the id the output would name
    piped = run("classify", "--model", str(tiny_model), "--json", input="a\nb\n\nc\n")
    assert piped.exit_code == 0 and "skipped 1 empty text: id stdin:2 at line 3" in piped.stderr
    assert [json.loads(line)["id"] for line in piped.stdout.splitlines()] == ["stdin:0", "stdin:1", "stdin:3"]


def test_nothing_but_empty_texts_is_an_error(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n\t\n")
    result = run("classify", "--input", str(path), "--model", str(tiny_model))
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "error: nothing to classify: every text is empty (id 0 at line 1, id 1 at line 2, id 2 at line 3)"
    )
    arguments = run("classify", "", "--model", str(tiny_model))
    assert arguments.exit_code == 1 and "every text is empty (id 0 at argument 1)" in arguments.stderr


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--model", "/nope/model"], "model not found"),
        (["--model", "0.6b"], "Did you mean '0.5b'?"),
        (["--model", "Qwen/Qwen2.5-0.5B-Instruct"], "HF_HUB_OFFLINE is set"),
    ],
)
def test_classify_bad_models(args: list[str], fragment: str) -> None:
    one_line_error(run("classify", "nice", *args), fragment)


def test_model_folder_without_config(tmp_path: Path) -> None:
    one_line_error(run("classify", "nice", "--model", str(tmp_path)), "has no config.json")


def test_evaluate_writes_consistent_artifacts(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    result = run(*evaluate_args(tiny_model, labelled_csv, tmp_path, "t1", 8, "--seed", "3"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "t1"
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "predictions.csv", "metrics.csv", "metrics.json", "confusion_matrix.png", "run.log"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".partial.csv")]
    config = json.loads((folder / "config.json").read_text())
    assert config["status"] == "complete" and config["sample_seed"] == 3 and config["n"] == 8
    assert config["model"] == str(tiny_model) and config["dtype"] and config["versions"]["torch"]
    preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
    assert list(preds.columns[:5]) == ["id", "gold", "predicted", "p_positive", "p_positive_raw"]
    assert len(preds) == 8 and preds["gold"].value_counts().to_dict() == {"positive": 4, "negative": 4}
    truth = pd.read_csv(labelled_csv, dtype={"id": str}).set_index("id")["label"].map({1: "positive", 0: "negative"})
    assert (preds["gold"] == preds["id"].map(truth)).all()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx((preds["gold"] == preds["predicted"]).mean())
    assert metrics["n"] == 8 and metrics["words"] == preds["words"].sum()
    assert pd.read_csv(folder / "metrics.csv").iloc[0]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert (folder / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    log = (folder / "run.log").read_text()
    assert "batch texts=" in log and "totals n=8" in log
    assert "accuracy" in result.output and "words/s" in result.output


def test_evaluate_json_and_method_all(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    result = run(
        *evaluate_args(
            tiny_model, labelled_csv, tmp_path, "all", 4, "--method", "all", "--k", "1", "--samples", "2", "--json"
        )
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [r["method"] for r in runs] == ["loglik", "zero-shot", "k-shot", "sampling"]
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == {
        "all-loglik",
        "all-zero-shot",
        "all-k-shot",
        "all-sampling",
    }
    ids = [list(pd.read_csv(tmp_path / f"all-{m}" / "predictions.csv")["id"]) for m in ("loglik", "sampling")]
    assert ids[0] == ids[1]  # every method sees the same sample


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--dataset", "/nope.csv"], "file not found"),
        (["--text-column", "review"], "no column 'review'; columns are: id, text, label"),
        (["--n", "100"], "use --n 12 or less"),
        (["--temperature", "0", "--method", "sampling"], "temperature must be above 0"),
        (["--resume"], "--resume needs the run to continue: --resume RUN_ID"),
        (["stray-id"], "to continue that run, use --resume stray-id"),
    ],
)
def test_evaluate_bad_input(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    base = ["evaluate", "--model", str(tiny_model), "--dataset", str(labelled_csv), "--output-dir", str(tmp_path)]
    if "--dataset" in args:
        base = base[:3] + base[5:]
    one_line_error(run(*base, *args), fragment)


def test_usage_errors_exit_2() -> None:
    assert run("evaluate", "--n", "many").exit_code == 2
    assert run("classify", "x", "--batch-size", "0").exit_code == 2


def test_error_is_exactly_one_line_on_stderr() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sentiq", "evaluate", "--model", "/nope/model"], capture_output=True, text=True
    )
    assert out.returncode == 1 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: model not found")


def _captured(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> dict:
    """Replace a library entry point with one that records its arguments and stops."""
    import importlib

    seen: dict = {}

    def record(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), name, record)
    return seen


def test_command_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Options declare no defaults of their own: both commands hand the library its own defaults."""
    from sentiq.settings import ClassifySettings, DataSpec, EvalSettings, MethodConfig, ModelSettings

    seen = _captured(monkeypatch, "sentiq.workflows.classify", "classify")
    assert run("classify", "nice").exit_code == 130
    _, settings, model, method, *_ = seen["args"]
    assert settings == ClassifySettings() and model == ModelSettings() and method == MethodConfig()
    seen = _captured(monkeypatch, "sentiq.workflows.evaluate", "evaluate")
    assert run("evaluate").exit_code == 130
    settings = seen["args"][0]
    assert settings == EvalSettings(n_given=False)  # no --n: the default n, fitted to what the data allows
    assert settings.methods == [MethodConfig()] and settings.model == ModelSettings() and settings.data == DataSpec()


def test_classify_and_evaluate_build_the_same_method(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = ["--method", "sampling", "--samples", "3", "--max-new-tokens", "4", "--top-p", "0.9", "--seed", "5"]
    seen = _captured(monkeypatch, "sentiq.workflows.classify", "classify")
    run("classify", "nice", *opts)
    from_classify = seen["args"][3]
    seen = _captured(monkeypatch, "sentiq.workflows.evaluate", "evaluate")
    run("evaluate", *opts)
    assert seen["args"][0].methods == [from_classify]
    assert (from_classify.samples, from_classify.max_new_tokens, from_classify.top_p) == (3, 4, 0.9)


def test_max_new_tokens_reaches_the_run(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    args = evaluate_args(
        tiny_model, labelled_csv, tmp_path, "short", 4, "--method", "zero-shot", "--max-new-tokens", "2"
    )
    assert run(*args).exit_code == 0
    config = json.loads((tmp_path / "short" / "config.json").read_text())
    assert config["method_settings"]["max_new_tokens"] == 2


def test_classify_tuned_reads_the_results_dir(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["classify", "nice", "--model", str(tiny_model), "--method", "sampling", "--tuned", "--samples", "1"]
    folder = tmp_path / "tuning" / tiny_model.name
    one_line_error(run(*args, "--results-dir", str(tmp_path)), str(folder / "prompt" / "best.json"))
    for kind, best in [
        ("prompt", {"prompt": "reply:capital", "calibrate": "batch"}),
        ("sampling", {"temperature": 0.3, "top_k": 7}),
    ]:
        (folder / kind).mkdir(parents=True)
        (folder / kind / "best.json").write_text(json.dumps(best))
    seen = _captured(monkeypatch, "sentiq.workflows.classify", "classify")
    assert run(*args, "--results-dir", str(tmp_path)).exit_code == 130
    method = seen["args"][3]  # --tuned applied by the library, before the workflow
    assert (method.temperature, method.top_k, method.prompt, method.calibrate) == (0.3, 7, "reply:capital", "batch")
    assert method.tail == 0  # a choice saved before endings were a candidate


def test_stdin_dash_and_piped_stdin_follow_one_rule(tiny_model: Path) -> None:
    lines = "good film\n\nbad film\n"
    dash = run("classify", "-", "--model", str(tiny_model), "--json", input=lines)
    piped = run("classify", "--model", str(tiny_model), "--json", input=lines)
    for result in (dash, piped):
        assert result.exit_code == 0 and "skipped 1 empty text: id stdin:1 at line 2" in result.stderr
    rows = [[json.loads(line)["id"] for line in r.stdout.splitlines()] for r in (dash, piped)]
    assert rows[0] == rows[1] == ["stdin:0", "stdin:2"]


def test_interrupt_message_fits_the_command(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _captured(monkeypatch, "sentiq.workflows.tuning.sampling", "tune_sampling")
    result = run("tune-sampling", "--model", str(tiny_model))
    assert result.exit_code == 130 and "interrupted" in result.output and "--resume" not in result.output


@pytest.mark.parametrize(
    "args,near",
    [
        (["classify", "nice", "--method", "zeroshot"], "zero-shot"),
        (["evaluate", "--method", "zeroshot"], "zero-shot"),
        (["evaluate", "--method", "loglik,zeroshot"], "zero-shot"),
        (["classify", "nice", "--calibrate", "batches"], "batch"),
        (["evaluate", "--device", "cuda0"], "cuda"),
        (["compare", "--metric", "acuracy"], "accuracy"),
    ],
)
def test_a_bad_choice_is_one_style_everywhere(args: list[str], near: str) -> None:
    result = run(*args)
    assert result.exit_code == 2 and f"Did you mean '{near}'?" in result.output, result.output
    assert "Traceback" not in result.output


def test_methods_may_be_comma_separated_or_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch, "sentiq.workflows.evaluate", "evaluate")
    assert run("evaluate", "--method", "loglik,zero-shot", "--method", "k-shot").exit_code == 130
    assert [m.method for m in seen["args"][0].methods] == ["loglik", "zero-shot", "k-shot"]


def test_classify_table_keeps_label_and_probability_beside_a_long_text(tiny_model: Path) -> None:
    review = "An absolutely wonderful film, moving and funny, with a cast at the top of its game " * 3
    result = run("classify", review, "short", "--model", str(tiny_model), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "│ 0 │" in line or "│ 1 │" in line]
    assert len(rows) == 2 and all(("positive" in line or "negative" in line) and "0." in line for line in rows)
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_progress_rate_is_words_per_second_of_inference() -> None:
    from types import SimpleNamespace

    from sentiq.cli.render import _Rates

    finished_long_ago = SimpleNamespace(fields={"labelled": 10, "words": 1000, "seconds": 2.0}, elapsed=500.0)
    assert str(_Rates().render(finished_long_ago)) == "5.0 texts/s  500 words/s"  # the clock plays no part


def test_tuned_says_what_it_applied_and_the_run_records_it(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "tuning" / tiny_model.name / "prompt"
    folder.mkdir(parents=True)
    (folder / "best.json").write_text(json.dumps({"prompt": "reply:capital", "calibrate": "contextual"}))
    said = run("classify", "nice", "--model", str(tiny_model), "--tuned", "--results-dir", str(tmp_path))
    assert said.exit_code == 0 and "--tuned applied prompt reply:capital, calibration contextual" in said.stderr
    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "tuned", 4, "--tuned")
    result = run(*args)
    assert result.exit_code == 0 and "loglik: --tuned applied prompt reply:capital" in result.stderr
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert (
        config["tuned"].startswith("prompt reply:capital, calibration contextual (") and str(folder) in config["tuned"]
    )


@pytest.mark.parametrize("command", ["classify", "evaluate", "tune-prompt", "tune-sampling", "fit", "compare", "serve"])
def test_help_reads_whole_at_80_columns(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80
    assert "…" not in result.output and "<bool>" not in result.output
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    names = [name for p in click_command.params for name in [*p.opts, *p.secondary_opts] if name.startswith("--")]
    cells = [cell.strip() for line in lines for cell in line.strip("│ ").split("  ") if cell.strip()]
    for name in names:  # each option's name whole in a cell of its own (beside its other names)
        assert any(name in cell.split(" ")[0].split(",") for cell in cells), name
    for word in ("float32", "contextual", "zero-shot"):  # choices wrap between words, never inside one
        if word in click_command.get_help(click.Context(click_command)):
            assert word in result.output


@pytest.mark.parametrize("width", [80, 120])
def test_the_progress_bar_is_one_line_at_any_width(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from sentiq.cli import render

    shown = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=shown, width=width, color_system=None))
    with render.progress() as start_task:
        advance = start_task("evaluate · qwen2.5-coder-1.5b-instruct · loglik", 30_000)
        advance(12_000, 2_345_678, 3.0)
    (line,) = shown.getvalue().splitlines()
    assert len(line) <= width and "12000/30000" in line and "781,893 words/s" in line
    assert ("texts/s" in line) == (width >= render.WIDE_BAR)


def _rendered(table: object, width: int = 80) -> str:
    import io

    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_tables_keep_names_whole_at_80_columns() -> None:
    from sentiq.cli.tables import comparison_table, grid_table

    ranked = pd.DataFrame(
        {
            "model": ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct"],
            **{"method": ["loglik", "k-shot (k=4, generate)"], "method_name": ["loglik", "k-shot"], "rank": [1, 1]},
            **{"prompt": ["p", "p"], "dataset": ["d", "d"], "n": [300, 300], "accuracy": [0.9, 0.8]},
            **{"acc_low": [0.8, 0.7], "acc_high": [0.95, 0.9], "macro_f1": [0.9, 0.8], "invalid": [0, 0]},
            **{"words_per_s": [135.0, 12.0], "run_id": ["a", "b"]},
        }
    )
    one_model = _rendered(comparison_table(ranked, 80))
    assert "sentiq compare · qwen2.5-coder-0.5b" in one_model and "words/s" in one_model
    two = ranked.assign(model=["qwen2.5-coder-0.5b-instruct", "other-family-model-1.5b-instruct"])
    shown = _rendered(comparison_table(two, 80))
    assert "qwen2.5-coder-0.5b" in shown and "other-family-model-1.5b" in shown  # whole, not folded
    for text in (one_model, shown):
        assert max(map(len, text.splitlines())) <= 80
    ensembles = ["three-way-last:capital,three-way:capital", "three-way-last:capital,three-way", "tweet"]
    grid = pd.DataFrame({"prompt": ensembles * 2, "calibrate": ["none"] * 3 + ["batch"] * 3, "accuracy": range(6)})
    text = _rendered(grid_table(grid, "prompt", "calibrate", "accuracy", ("tweet", "none"), "loglik accuracy"))
    assert "three-way-last:capital, three-way:capital" in text and "three-way-last:capital, three-way " in text
    sampling = pd.DataFrame({"temperature": [0.2, 0.2, 0.7, 0.7], "top_k": [5, 50, 5, 50], "macro_f1": [0.1] * 4})
    text = _rendered(grid_table(sampling, "temperature", "top_k", "macro_f1", (0.2, 5), "sampling", "top-k"))
    assert "top-k 5" in text and "top-k 50" in text


def test_a_bad_backend_is_refused_in_one_line_by_either_name() -> None:
    from sentiq.errors import OptionError
    from sentiq.settings import RaySettings

    for flag in ("--backend", "--engine"):
        result = run("classify", "nice", flag, "rya")
        said = " ".join(result.output.replace("│", " ").split())  # Click's error panel wraps at 80 columns
        assert result.exit_code == 2 and "'rya' is not one of local, ray. Did you mean 'ray'?" in said
    with pytest.raises(OptionError, match="unknown backend 'rya': choose local or ray"):
        RaySettings(backend="rya")  # type: ignore[arg-type]
