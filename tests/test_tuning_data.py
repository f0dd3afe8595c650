"""Tuning on labelled texts of one's own, in any label set: the searches read the data as evaluate does,
keep their choice per label set where --tuned finds it, and evaluation with that choice leaves the texts
it was searched on out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli import app

runner = CliRunner()
LABELS3 = ("negative", "neutral", "positive")
WORDS = {"negative": "awful dull mess", "neutral": "it opened on friday", "positive": "lovely fine film"}


@pytest.fixture
def tweets(tmp_path: Path) -> Path:
    """30 texts, 10 per label, each text its own."""
    rows = [(f"t{i}", f"{WORDS[LABELS3[i % 3]]} number {i}", LABELS3[i % 3]) for i in range(30)]
    path = tmp_path / "tweets.csv"
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(path, index=False)
    return path


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_tuning_on_one_s_own_data_is_found_per_label_set_and_kept_apart_from_evaluation(
    tiny_model: Path, tweets: Path, tmp_path: Path
) -> None:
    model, out = str(tiny_model), tmp_path / "results"
    common = ["--model", model, "--dataset", str(tweets), "-o", str(out)]
    said = _invoke("tune-prompt", *common, "--n", "6", "--ensemble", "0")
    assert "split.csv" in said and "last 80 words" not in said  # no text is longer: no cells with endings
    folder = out / "tuning" / tiny_model.name / "negative-neutral-positive"
    best = json.loads((folder / "prompt" / "best.json").read_text())
    assert best["labels"] == list(LABELS3) and best["criterion"] == "accuracy"
    assert {"three-way", "tweet:capital"} <= set(best["prompts"])  # the built-ins in the data's labels ...
    assert not {"classifier", "stars"} & set(best["prompts"])  # ... and none of another set
    assert best["split"]["dataset"]["source"] == str(tweets) and best["split"]["sample"] == "balanced"
    assert set(best["answer_shares"]) == set(LABELS3)
    searched = pd.read_csv(folder / "prompt" / "split.csv", dtype=str)
    assert len(searched) == 6 and sorted(searched["label"]) == sorted(LABELS3 * 2)
    assert not (out / "tuning" / tiny_model.name / "prompt").exists()  # the binary choice is another's

    _invoke("tune-sampling", *common, "--n", "6", "--seed", "1", "--temperatures", "0.7", "--top-ks", "5")
    sampling = json.loads((folder / "sampling" / "best.json").read_text())
    assert sampling["prompt"] == "three-way" and sampling["labels"] == list(LABELS3)
    sampled = pd.read_csv(folder / "sampling" / "split.csv", dtype=str)
    searched_on = set(searched["id"]) | set(sampled["id"])

    evaluation = sentiq.evaluate(
        model,
        ["loglik", "sampling"],
        dataset=str(tweets),
        prompt="three-way",
        tuned=True,
        results_dir=out,
        n=None,
        device="cpu",
        dtype="float32",
        samples=1,
    )
    loglik, sampled_run = evaluation.runs
    assert loglik.method.prompt == best["prompt"] and len(searched_on) > 6  # two seeds, two splits
    for run in evaluation.runs:  # one sample for both methods: neither search's texts in it
        assert run.config["tuning_texts_left_out"] == len(searched_on)
    assert set(sampled_run.predictions["id"]).isdisjoint(searched_on) and len(sampled_run.predictions) == 30 - len(
        searched_on
    )
    assert "prompt three-way" in loglik.config["tuned"] and str(folder / "prompt") in loglik.config["tuned"]


def test_tuned_evaluation_says_which_texts_it_left_out(tiny_model: Path, tweets: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    common = ["--model", str(tiny_model), "--dataset", str(tweets)]
    _invoke(
        "tune-prompt", *common, "-o", str(out), "--n", "3", "--tail", "0", "--ensemble", "0", "--prompts", "three-way"
    )
    said = _invoke(
        "evaluate", *common, "-o", str(out), "--prompt", "three-way", "--tuned", "--n", "9", "--device", "cpu"
    )
    assert "left out 3 texts the tuned choice was searched on" in " ".join(said.split())
    (run,) = [p for p in out.iterdir() if p.name != "tuning"]
    assert json.loads((run / "config.json").read_text())["tuning_texts_left_out"] == 3


def test_a_label_set_without_a_search_names_the_one_to_run(tiny_model: Path, tweets: Path, tmp_path: Path) -> None:
    with pytest.raises(sentiq.OptionError, match=r"tune-prompt --dataset FILE \(texts labelled negative, neutral"):
        sentiq.evaluate(
            str(tiny_model), "loglik", dataset=str(tweets), prompt="three-way", tuned=True, results_dir=tmp_path
        )


def test_a_search_reads_its_data_in_the_built_in_label_set_its_labels_fit(tmp_path: Path) -> None:
    from sentiq.settings import DataSpec
    from sentiq.workflows.tuning.splits import tuning_split

    coded = tmp_path / "coded.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(12)], "label": [i % 3 for i in range(12)]}).to_csv(coded)
    split = tuning_split(DataSpec(str(coded), label_map="0=negative,1=neutral,2=positive"), [], 6, 0, "balanced")
    assert split.labels == LABELS3 and sorted(split.texts["label"]) == sorted(LABELS3 * 2)
    stars = tmp_path / "stars.csv"
    pd.DataFrame({"text": [f"review {i}" for i in range(10)], "label": [1, 2, 3, 4, 5] * 2}).to_csv(stars)
    assert tuning_split(DataSpec(str(stars)), [], 5, 0, "balanced").labels == ("1", "2", "3", "4", "5")
    binary = tuning_split(DataSpec(str(coded), label_map="0=negative,1=positive,2=positive"), [], 4, 0, "balanced")
    assert binary.labels == ("positive", "negative")
    odd = tmp_path / "odd.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["meh", "wow"]}).to_csv(odd)
    with pytest.raises(sentiq.DataError, match="read in none of the built-in label sets"):
        tuning_split(DataSpec(str(odd)), [], 2, 0, "balanced")
    with pytest.raises(sentiq.DataError, match="file not found"):  # not taken for labels of no set
        tuning_split(DataSpec(str(tmp_path / "missing.csv")), [], 2, 0, "balanced")


def test_the_candidates_of_a_search_share_one_label_set(tiny_model: Path, tweets: Path) -> None:
    with pytest.raises(sentiq.OptionError, match="different label sets .* search each set apart"):
        sentiq.tune_prompt(str(tiny_model), dataset=str(tweets), prompts="three-way,classifier", n=3)
    with pytest.raises(sentiq.DataError, match="label values not in the label map: 'neutral'"):
        sentiq.tune_sampling(str(tiny_model), dataset=str(tweets), prompt="classifier", n=3)


def test_a_stratified_search_chooses_by_macro_recall(tiny_model: Path, tmp_path: Path) -> None:
    skewed = tmp_path / "skewed.csv"
    labels = ["neutral"] * 8 + ["negative"] * 2 + ["positive"] * 2
    pd.DataFrame({"text": [f"{lab} text {i}" for i, lab in enumerate(labels)], "label": labels}).to_csv(skewed)
    result = sentiq.tune_prompt(
        str(tiny_model),
        dataset=str(skewed),
        n=12,
        sample="stratified",
        tail=0,
        ensemble=0,
        prompts="three-way",
        output_dir=tmp_path / "results",
        device="cpu",
        dtype="float32",
    )
    assert result.best["criterion"] == "macro_recall" and result.best["split"]["sample"] == "stratified"
    assert result.best["macro_recall"] == pytest.approx(result.grid["macro_recall"].max())


def test_k_shot_search_on_one_s_own_data_draws_from_demos(tiny_model: Path, tweets: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"text": [f"pool {lab} {i}" for i, lab in enumerate(LABELS3 * 2)], "label": LABELS3 * 2}).to_csv(pool)
    options = dict(dataset=str(tweets), prompts="three-way", n=3, tail=0, ensemble=0, k=1, output_dir=tmp_path)
    with pytest.raises(sentiq.OptionError, match="is the dataset being evaluated"):
        sentiq.tune_prompt(str(tiny_model), demos=str(tweets), **options)
    with pytest.raises(sentiq.OptionError, match="0 'neutral' .* give demos a file with texts of every label"):
        sentiq.tune_prompt(str(tiny_model), **options)
    result = sentiq.tune_prompt(str(tiny_model), demos=str(pool), device="cpu", dtype="float32", **options)
    shown = result.best["demonstrations"]
    assert sorted(d["label"] for d in shown) == sorted(LABELS3) and all(d["text"].startswith("pool") for d in shown)
    assert result.folder == tmp_path / "tuning" / tiny_model.name / "negative-neutral-positive" / "k-shot-prompt"


def test_a_search_given_bad_data_says_so_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results"
    missing = runner.invoke(app, ["tune-prompt", "--dataset", str(tmp_path / "none.csv"), "-o", str(out)])
    assert missing.exit_code == 1 and missing.output.count("\n") == 1 and "file not found" in missing.output
    wrong = runner.invoke(app, ["tune-sampling", "--sample", "random", "-o", str(out)])
    assert wrong.exit_code == 2
    assert not out.exists()
