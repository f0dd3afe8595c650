"""The library as a notebook uses it, without the command line: results equal to the command's on the same
settings, nothing written unless asked, errors as sentiq.SentiqError, and `import sentiq` light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

import sentiq
from sentiq.cli import app

TEXTS = ["An absolute delight, I loved it.", "A dull and lifeless mess.", "great film", "boring"]


@pytest.fixture(scope="module")
def clf(tiny_model: Path) -> sentiq.Classifier:
    return sentiq.load(str(tiny_model), device="cpu", dtype="float32")


def test_import_sentiq_and_its_names_load_no_torch() -> None:
    code = (
        "import sys, sentiq; sentiq.load; sentiq.evaluate; sentiq.SentiqError; "
        "sys.exit(1 if {'torch', 'pandas', 'numpy', 'transformers'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_import_sentiq_sets_no_environment_variables() -> None:
    code = "import os; before = dict(os.environ); import sentiq; sentiq.load; assert dict(os.environ) == before"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_classify_equals_the_command_line(clf: sentiq.Classifier, tiny_model: Path) -> None:
    results = clf.classify(TEXTS)
    cli = CliRunner().invoke(
        app, ["classify", *TEXTS, "--model", str(tiny_model), "--device", "cpu", "--dtype", "float32", "--json"]
    )
    assert cli.exit_code == 0, cli.output
    rows = [json.loads(line) for line in cli.stdout.splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert [r.label for r in results] == [by_id[str(i)]["label"] for i in range(len(TEXTS))]
    assert [r.p_positive for r in results] == pytest.approx([by_id[str(i)]["p_positive"] for i in range(len(TEXTS))])
    assert all(r.label in ("positive", "negative") and 0 <= r.p_positive <= 1 for r in results)


def test_one_string_is_one_text_and_an_empty_one_is_invalid(clf: sentiq.Classifier) -> None:
    (one,) = clf.classify("great film")
    assert one == clf.classify(["great film"])[0]
    empty, full = clf.classify(["   ", "great film"])
    assert (empty.label, empty.p_positive) == ("invalid", None) and full == one


def test_classify_frame_keeps_the_index_and_the_columns(clf: sentiq.Classifier) -> None:
    df = pd.DataFrame({"review": TEXTS, "stars": [5, 1, 4, 2]}, index=[10, 20, 30, 40])
    out = clf.classify_frame(df, text_column="review")
    assert list(out.index) == [10, 20, 30, 40] and list(out.columns) == [
        "review",
        "stars",
        "label",
        "p_positive",
    ]  # loglik leaves no answer
    assert list(out["label"]) == [r.label for r in clf.classify(TEXTS)]
    assert list(df.columns) == ["review", "stars"]  # the caller's frame is left as it was
    with pytest.raises(sentiq.DataError, match="no column 'text'"):
        clf.classify_frame(df)


def test_k_shot_finds_its_demonstration_pool(tiny_model: Path) -> None:
    clf = sentiq.load(str(tiny_model), method="k-shot", k=1, device="cpu", dtype="float32")
    assert [r.label for r in clf.classify(TEXTS)] and clf.method.k == 1
    assert "k-shot" in repr(clf)


def test_bad_choices_are_sentiq_errors_with_a_suggestion(tiny_model: Path) -> None:
    with pytest.raises(sentiq.OptionError, match="Did you mean 'zero-shot'"):
        sentiq.load(str(tiny_model), method="zeroshot")
    with pytest.raises(sentiq.SentiqError, match="Did you mean 'temperature'"):
        sentiq.load(str(tiny_model), method="sampling", temprature=0.5)
    with pytest.raises(sentiq.ModelError):
        sentiq.load("/no/such/model")


def test_evaluate_in_memory_writes_nothing_and_equals_the_command_line(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    evaluation = sentiq.evaluate(
        str(tiny_model), ["loglik", "zero-shot"], dataset=str(labelled_csv), n=8, device="cpu", dtype="float32"
    )
    assert sorted(tmp_path.rglob("*")) == before  # in memory: no results/ folder, no file
    assert list(evaluation.metrics["method"]) == ["loglik", "zero-shot"]
    assert len(evaluation.predictions) == 16 and set(evaluation.predictions["gold"]) == {"positive", "negative"}

    args = evaluate_args(tiny_model, labelled_csv, tmp_path / "cli", "cli", 8, "--method", "loglik")
    assert CliRunner().invoke(app, [*args, "--device", "cpu", "--dtype", "float32"]).exit_code == 0
    cli = pd.read_csv(tmp_path / "cli" / "cli" / "predictions.csv", dtype={"id": str})
    ours = evaluation.runs[0].predictions
    assert list(ours["id"]) == list(cli["id"]) and list(ours["predicted"]) == list(cli["predicted"])
    assert list(ours["p_positive"]) == pytest.approx(list(cli["p_positive"]))
    assert (
        evaluation.runs[0].metrics["accuracy"]
        == json.loads((tmp_path / "cli" / "cli" / "metrics.json").read_text())["accuracy"]
    )


def test_a_saved_evaluation_is_a_run_folder_compare_ranks(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    evaluation = sentiq.evaluate(
        str(tiny_model), "loglik", dataset=str(labelled_csv), n=6, run_id="mine", device="cpu", dtype="float32"
    )
    (folder,) = evaluation.save(tmp_path / "results")
    assert folder == tmp_path / "results" / "mine"
    assert {p.name for p in folder.iterdir()} >= {
        "config.json",
        "predictions.csv",
        "metrics.json",
        "confusion_matrix.png",
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["status"] == "complete" and len(config["sample_digest"]) == 16
    assert config["machine"]["cpu"] and isinstance(config["machine"]["cpu_flags"], list)  # where words/s were measured
    comparison = sentiq.compare(tmp_path / "results")
    assert list(comparison.table["run_id"]) == ["mine"] and comparison.files == []
    assert not (tmp_path / "results" / "comparison.csv").exists()  # ranking writes nothing unless asked
    sentiq.compare(tmp_path / "results", write=True, html=tmp_path / "report.html")
    assert (tmp_path / "results" / "comparison.csv").is_file() and (tmp_path / "report.html").is_file()


def test_classify_file_streams_with_a_loaded_classifier_and_resumes(clf: sentiq.Classifier, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [f"t{i}" for i in range(6)], "text": TEXTS + ["fine", "awful"]}).to_csv(source, index=False)
    seen: list[dict] = []
    with sentiq.classify_stream(source, tmp_path / "out.jsonl", clf) as stream:
        for step in stream:
            seen += step.rows
    summary = stream.summary
    assert summary.texts == 6 and len(seen) == 6
    rows = pd.read_json(tmp_path / "out.jsonl", lines=True, dtype={"id": str})
    assert list(rows.columns) == ["id", "text", "label", "p_positive"]
    assert list(rows.sort_values("id")["label"]) == [r.label for r in clf.classify(TEXTS + ["fine", "awful"])]
    again = sentiq.classify_file(source, tmp_path / "out.jsonl", clf, resume=True)
    assert again.already_complete and again.texts == 0
    with pytest.raises(sentiq.DataError, match="already holds labels"):
        sentiq.classify_file(source, tmp_path / "out.jsonl", clf)


def test_classify_file_takes_the_model_one_way(clf: sentiq.Classifier, tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.settings import RaySettings

    out = tmp_path / "out.jsonl"
    with pytest.raises(sentiq.OptionError, match="name the model one way: classifier= and model= were both given"):
        sentiq.classify_file([("a", "great")], out, clf, model=str(tiny_model))
    with pytest.raises(sentiq.OptionError, match="classifier= and model= were both given"):
        sentiq.classify_file([("a", "great")], out, clf, model=clf)
    with pytest.raises(sentiq.OptionError, match="classifier= carries its own method"):
        sentiq.classify_file([("a", "great")], out, clf, method="zero-shot")
    with pytest.raises(sentiq.OptionError, match="a Classifier is a model loaded in this process"):
        sentiq.classify_file(tmp_path, tmp_path / "o.parquet", model=clf, scale=RaySettings(backend="ray"))
    assert not out.exists()
    summary = sentiq.classify_file([("a", "great"), ("b", "dull")], out, model=clf, method="zero-shot")
    assert summary.texts == 2 and "answer" in pd.read_json(out, lines=True).columns  # the method given, on that engine


def test_bad_input_to_the_other_calls_is_a_sentiq_error_and_loses_nothing(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path
) -> None:
    from sentiq.settings import RaySettings

    with pytest.raises(sentiq.OptionError, match="Did you mean 'ensemble'"):
        sentiq.tune_prompt(str(tiny_model), ensembel=2)  # refused before any model loads
    with pytest.raises(
        sentiq.OptionError, match="unknown tune_sampling option 'temperature'. Did you mean 'temperatures'"
    ):
        sentiq.tune_sampling(str(tiny_model), temperature=0.5)
    with pytest.raises(sentiq.OptionError, match="labels an input file or folder"):
        sentiq.classify_file([("a", "great")], tmp_path / "out.parquet", scale=RaySettings(backend="ray"))
    with pytest.raises(sentiq.DataError, match="file not found"):
        sentiq.load(str(tiny_model), method="k-shot", demos=str(tmp_path / "no-such-demos.csv"))
    evaluation = sentiq.evaluate(str(tiny_model), "loglik", dataset=str(labelled_csv), n=4, run_id="once")
    (folder,) = evaluation.save(tmp_path / "results")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = sentiq.evaluate(str(tiny_model), "loglik", dataset=str(labelled_csv), n=4, run_id="once")
    with pytest.raises(sentiq.RunError, match="already exists"):
        again.save(tmp_path / "results")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the first run untouched


def test_missing_texts_are_invalid_and_other_types_are_refused_naming_their_place(clf: sentiq.Classifier) -> None:
    import numpy as np

    great = clf.classify("great film")[0]
    got = clf.classify(pd.Series(["great film", np.nan, None, pd.NA]))
    assert got[0] == great and all((r.label, r.p_positive) == ("invalid", None) for r in got[1:])
    assert clf.classify([None])[0].label == "invalid"  # not the word "None"
    with pytest.raises(sentiq.DataError, match=r"text 1 holds a lone surrogate \(\\ud800\) at character 4"):
        clf.classify(["fine", "bad \ud800 film"])  # no tokenizer encodes half a surrogate pair
    for bad, message in [
        ([b"great film"], "text 0 is a bytes, not a string"),
        (["fine", 7], "text 1 is a int, not a string"),
        (["fine", "ok", 3.5], "text 2 is a float, not a string"),
        (["fine", {"a": 1}], "text 1 is a dict, not a string"),
        ({"great film": 1}, "texts must be a string or an iterable of strings, not dict"),
        (b"great film", "not bytes"),
        (7, "not int"),
    ]:
        with pytest.raises(TypeError, match=message):
            clf.classify(bad)


def test_classify_frame_refuses_what_is_not_a_frame_and_keeps_the_users_columns(clf: sentiq.Classifier) -> None:
    with pytest.raises(TypeError, match="classify_frame takes a pandas DataFrame, not list"):
        clf.classify_frame(["a", "b"])
    gold = pd.DataFrame({"text": ["great film", "boring", None], "label": ["positive", "negative", "positive"]})
    out = clf.classify_frame(gold)
    assert list(out["label"]) == ["positive", "negative", "positive"]  # the user's gold labels, untouched
    assert list(out.columns) == ["text", "label", "sentiq_label", "sentiq_p_positive"]
    assert list(out["sentiq_label"])[:2] == [r.label for r in clf.classify(["great film", "boring"])]
    assert out["sentiq_label"].iloc[2] == "invalid"
    with pytest.raises(TypeError, match="row 'b' is a int, not a string"):
        clf.classify_frame(pd.DataFrame({"text": ["fine", 3]}, index=["a", "b"]))
    with pytest.raises(sentiq.DataError, match="columns 'label' and 'sentiq_label': rename one"):
        clf.classify_frame(gold.assign(sentiq_label="x"))


def test_bad_keyword_arguments_are_refused_in_python_terms(tiny_model: Path, labelled_csv: Path) -> None:
    with pytest.raises(sentiq.OptionError, match="^batch_size must be at least 1$"):
        sentiq.load(str(tiny_model), batch_size=0)
    with pytest.raises(sentiq.OptionError, match="^max_batch_tokens must be at least 1$"):
        sentiq.load(str(tiny_model), max_batch_tokens=0)
    with pytest.raises(TypeError, match="batch_size must be an int, not str"):
        sentiq.load(str(tiny_model), batch_size="8")
    with pytest.raises(sentiq.OptionError, match="no method to evaluate: name at least one with method"):
        sentiq.evaluate(str(tiny_model), [], n=4)
    with pytest.raises(sentiq.OptionError, match="^n must be at least 1$"):
        sentiq.evaluate(str(tiny_model), dataset=str(labelled_csv), n=0)
    with pytest.raises(sentiq.DataError, match=r"n=40 needs 20 positive and 20 negative texts; .*\(use n=12 or less\)"):
        sentiq.evaluate(str(tiny_model), dataset=str(labelled_csv), n=40)
    with pytest.raises(TypeError, match="n must be an int, None \\(every text\\) or 'auto', not 'all'"):
        sentiq.evaluate(str(tiny_model), dataset=str(labelled_csv), n="all")
    with pytest.raises(TypeError, match="run_id must be a run folder's name"):
        sentiq.resume_run(7)  # type: ignore[arg-type]
    with pytest.raises(sentiq.RunError, match="no run ghost under"):
        sentiq.resume_run("ghost", output_dir=labelled_csv.parent)
    with pytest.raises(TypeError, match="label_map must be a dict"):
        sentiq.evaluate(str(tiny_model), dataset=str(labelled_csv), n=4, label_map=[("1", "positive")])


def test_a_label_map_is_a_dict_or_a_string_and_gives_each_value_once(tiny_model: Path, labelled_csv: Path) -> None:
    run = lambda label_map: sentiq.evaluate(  # noqa: E731
        str(tiny_model), dataset=str(labelled_csv), n=4, seed=1, label_map=label_map
    )
    as_dict, as_text = run({1: "negative", 0: "positive"}), run("1=negative,0=positive")
    assert list(as_dict.predictions["gold"]) == list(as_text.predictions["gold"])
    assert (
        as_dict.predictions.set_index("id")["gold"].to_dict() != run(None).predictions.set_index("id")["gold"].to_dict()
    )
    with pytest.raises(sentiq.DataError, match="label_map gives the value 'c' twice"):
        run("1=positive,0=negative,c=positive,c=negative")
    with pytest.raises(sentiq.DataError, match="label_map gives the value 'a' twice"):
        run({"A": "positive", "a": "negative"})
