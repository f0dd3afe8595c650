"""Label sets beyond positive and negative: a prompt of three labels through every method, the library,
classify's outputs and evaluate's runs; binary prompts keep their outputs (the rest of the suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli import app

runner = CliRunner()
THREE = """
name = "tweets"
description = "Three-way sentiment of a short text."
user = "Text: {text}\\nAnswer {negative}, {neutral} or {positive}."

[labels]
negative = "negative"
neutral = "neutral"
positive = "positive"
"""
LABELS3 = ("negative", "neutral", "positive")
TEXTS = ["I loved it", "it was fine I guess", "dull and boring", "the plot was a mess", "great film"]


@pytest.fixture
def three(tmp_path: Path) -> Path:
    path = tmp_path / "three.toml"
    path.write_text(THREE)
    return path


@pytest.fixture
def tweets(tmp_path: Path) -> Path:
    rows = [(f"t{i}", f"tweet number {i} about the film", LABELS3[i % 3]) for i in range(15)]
    path = tmp_path / "tweets.csv"
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(path, index=False)
    return path


def _tiny(tiny_model: Path, three: Path, **options: object) -> sentiq.Classifier:
    return sentiq.load(str(tiny_model), prompt=str(three), device="cpu", dtype="float32", **options)


def test_loglik_scores_every_label_of_the_set(tiny_model: Path, three: Path) -> None:
    clf = _tiny(tiny_model, three)
    assert clf.labels == LABELS3
    results = clf.classify(TEXTS)
    for r in results:
        assert r.label in LABELS3 and set(r.scores) == set(LABELS3) and r.p_positive is None
        assert sum(r.scores.values()) == pytest.approx(1.0) and r.label == max(r.scores, key=r.scores.get)
    frame = clf.classify_frame(pd.DataFrame({"text": TEXTS}))
    assert list(frame.columns) == ["text", "label", "p_negative", "p_neutral", "p_positive"]
    assert list(frame["p_neutral"]) == pytest.approx([r.scores["neutral"] for r in results])


@pytest.mark.parametrize("method", ["zero-shot", "sampling"])
def test_generation_methods_answer_in_the_set(tiny_model: Path, three: Path, method: str) -> None:
    clf = _tiny(tiny_model, three, method=method, samples=3, max_new_tokens=3)
    for r in clf.classify(TEXTS):
        assert r.label in (*LABELS3, "invalid") and r.answer is not None
        if method == "sampling" and r.label != "invalid":  # each label's share of the valid votes
            assert set(r.scores) == set(LABELS3) and sum(r.scores.values()) == pytest.approx(1.0)


def test_batch_calibration_divides_out_a_prior_over_every_label(tiny_model: Path, three: Path) -> None:
    plain, calibrated = _tiny(tiny_model, three), _tiny(tiny_model, three, calibrate="batch")
    raw = [r.scores for r in plain.classify(TEXTS)]
    got = calibrated.classify(TEXTS)
    prior = calibrated._runner.prior
    assert prior.shape == (3,) and prior == pytest.approx([sum(s[lab] for s in raw) / len(raw) for lab in LABELS3])
    assert all(sum(r.scores.values()) == pytest.approx(1.0) for r in got)


def test_k_shot_needs_a_pool_with_every_label(tiny_model: Path, three: Path) -> None:
    with pytest.raises(sentiq.OptionError, match="demonstrations of every label; the pool has 0 'neutral'"):
        _tiny(tiny_model, three, method="k-shot", k=1)


def test_an_ensemble_needs_one_label_set(tiny_model: Path, three: Path) -> None:
    with pytest.raises(sentiq.OptionError, match="an ensemble needs one"):
        sentiq.load(str(tiny_model), prompt=f"classifier,{three}", device="cpu", dtype="float32")


def test_classify_writes_a_probability_column_per_label(tiny_model: Path, three: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [f"x{i}" for i in range(len(TEXTS))], "text": TEXTS}).to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    args = [
        "classify",
        "--input",
        str(source),
        "--output",
        str(out),
        "--model",
        str(tiny_model),
        "--prompt",
        str(three),
    ]
    assert runner.invoke(app, args).exit_code == 0
    rows = pd.read_parquet(out)
    assert list(rows.columns) == ["id", "text", "label", "p_negative", "p_neutral", "p_positive"]
    assert rows[["p_negative", "p_neutral", "p_positive"]].sum(axis=1).to_numpy() == pytest.approx(1.0)
    shown = runner.invoke(app, ["classify", *TEXTS[:2], "--model", str(tiny_model), "--prompt", str(three)])
    assert shown.exit_code == 0 and "P(label)" in shown.stdout
    as_json = runner.invoke(app, ["classify", "meh", "--model", str(tiny_model), "--prompt", str(three), "--json"])
    assert set(json.loads(as_json.stdout)) == {"id", "text", "label", "p_negative", "p_neutral", "p_positive"}


def test_evaluate_measures_a_three_way_sample(tiny_model: Path, three: Path, tweets: Path, tmp_path: Path) -> None:
    args = ["evaluate", "--model", str(tiny_model), "--prompt", str(three), "--dataset", str(tweets), "--n", "9"]
    result = runner.invoke(app, [*args, "--output-dir", str(tmp_path / "runs"), "--run-id", "three"])
    assert result.exit_code == 0, result.output
    assert "P / R / F1 neutral" in result.stdout
    folder = tmp_path / "runs" / "three"
    predictions = pd.read_csv(folder / "predictions.csv")
    assert predictions["gold"].value_counts().to_dict() == {"negative": 3, "neutral": 3, "positive": 3}  # balanced
    assert list(predictions.columns) == [
        *("id", "gold", "predicted", "answer", "words", "tokens", "truncated", "latency_ms"),
        *("p_negative", "p_neutral", "p_positive"),
    ]  # each label's probability in place of the binary p_positive columns, none twice
    assert predictions[["p_negative", "p_neutral", "p_positive"]].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["per_label"]) == set(LABELS3) and 0 <= metrics["macro_recall"] <= 1
    assert "per_label.neutral.recall" in pd.read_csv(folder / "metrics.csv").columns
    assert json.loads((folder / "config.json").read_text())["labels"] == list(LABELS3)
    assert (folder / "confusion_matrix.png").is_file()


def test_label_maps_name_any_label(tiny_model: Path, three: Path, tmp_path: Path) -> None:
    coded = tmp_path / "coded.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": [0, 1, 2] * 2}).to_csv(coded, index=False)
    run = sentiq.evaluate(
        str(tiny_model),
        "loglik",
        prompt=str(three),
        dataset=str(coded),
        label_map="0=negative,1=neutral,2=positive",
        n=6,
        device="cpu",
        dtype="float32",
    )
    assert sorted(run.predictions["gold"]) == sorted(LABELS3 * 2)
    with pytest.raises(sentiq.DataError, match="LABEL one of negative, neutral, positive"):
        sentiq.evaluate(str(tiny_model), "loglik", prompt=str(three), dataset=str(coded), label_map="0=bad", n=6)
    with pytest.raises(sentiq.DataError, match="the embedded sample is labelled positive/negative"):
        sentiq.evaluate(str(tiny_model), "loglik", prompt=str(three), n=6)
    with pytest.raises(sentiq.DataError, match="needs 2 negative, 2 neutral and 2 positive texts"):
        pd.DataFrame({"text": ["a", "b", "c"], "label": ["negative", "neutral", "positive"]}).to_csv(coded, index=False)
        sentiq.evaluate(str(tiny_model), "loglik", prompt=str(three), dataset=str(coded), n=6)


def test_methods_of_two_label_sets_are_evaluated_apart(tiny_model: Path, three: Path, tweets: Path) -> None:
    from sentiq.settings import MethodConfig

    methods = [MethodConfig(prompt=str(three)), MethodConfig(method="zero-shot")]
    with pytest.raises(sentiq.OptionError, match="different label sets"):
        sentiq.evaluate(str(tiny_model), methods, dataset=str(tweets), n=6)


def test_the_embedded_tuning_reviews_take_binary_prompts(tiny_model: Path, three: Path) -> None:
    result = runner.invoke(app, ["tune-prompt", "--model", str(tiny_model), "--prompts", str(three), "--n", "4"])
    assert result.exit_code == 1
    assert "embedded tuning reviews are labelled positive/negative, and prompt 'tweets' answers in negative" in (
        result.output
    )


def test_ordered_labels_add_the_distance_measures_of_ratings() -> None:
    from sentiq.workflows.metrics import quality

    stars = ["1", "2", "3", "4", "5"]
    q = quality(["1", "2", "3", "4", "5", "5"], ["1", "3", "3", "5", "invalid", "1"], stars, ordered=True)
    assert q.mae == pytest.approx(6 / 5)  # |0| |1| |0| |1| |4| over the five valid answers
    assert q.within_one == pytest.approx(4 / 6)  # the invalid answer is not within one
    from sklearn.metrics import cohen_kappa_score

    assert q.qwk == pytest.approx(cohen_kappa_score([0, 1, 2, 3, 4], [0, 2, 2, 4, 0], weights="quadratic"))
    assert quality(["positive"], ["positive"]).mae is None  # unordered: none of them


def test_macro_averages_are_over_the_labels_the_sample_holds() -> None:
    from sentiq.workflows.metrics import quality

    stars = ["1", "2", "3", "4", "5"]
    q = quality(["1", "2", "4", "5"], ["1", "3", "4", "4"], stars, ordered=True)  # no 3-star text
    assert q.macro_recall == pytest.approx((1 + 0 + 1 + 0) / 4) and q.per_label["3"]["support"] == 0
    assert q.macro_precision == pytest.approx((1 + 0 + 0.5 + 0) / 4)  # answering 3 still costs the 2's recall


def test_the_built_in_rating_prompt_is_ordered_and_evaluates(tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.methods.prompts import load_prompt

    assert load_prompt("stars").ordered and load_prompt("stars").labels == ("1", "2", "3", "4", "5")
    assert load_prompt("three-way").labels == LABELS3
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame({"text": [f"review {i}" for i in range(10)], "stars": [1, 2, 3, 4, 5] * 2}).to_csv(
        reviews, index=False
    )
    run = sentiq.evaluate(
        str(tiny_model), "loglik", prompt="stars", dataset=str(reviews), label_column="stars", n=10, device="cpu"
    )
    metrics = run.runs[0].metrics
    assert metrics["within_one"] is not None and metrics["qwk"] is not None and 0 <= metrics["mae"] <= 4
    assert run.runs[0].config["ordered"] is True


def test_a_stratified_sample_keeps_the_data_s_proportions(tiny_model: Path, three: Path, tmp_path: Path) -> None:
    from sentiq.io.samples import draw_sample

    data = pd.DataFrame(
        {
            "id": [str(i) for i in range(20)],
            "text": ["t"] * 20,
            "label": ["neutral"] * 12 + ["negative"] * 2 + ["positive"] * 6,
        }
    )
    drawn = draw_sample(data, 10, 0, LABELS3, "stratified")
    assert drawn["label"].value_counts().to_dict() == {"neutral": 6, "positive": 3, "negative": 1}
    assert draw_sample(data, 10, 0, LABELS3, "stratified").equals(drawn)  # seeded
    skewed = tmp_path / "skewed.csv"
    data.to_csv(skewed, index=False)
    with pytest.raises(sentiq.DataError, match="or sample stratified"):
        sentiq.evaluate(str(tiny_model), "loglik", prompt=str(three), dataset=str(skewed), n=9)
    run = sentiq.evaluate(
        str(tiny_model), "loglik", prompt=str(three), dataset=str(skewed), n=10, sample="stratified", device="cpu"
    )
    assert run.runs[0].config["sample"] == "stratified" and len(run.predictions) == 10
    result = runner.invoke(app, ["evaluate", "--sample", "stratifed"])
    assert result.exit_code == 2 and "Did you mean 'stratified'?" in result.output


def test_k_shot_draws_from_a_pool_of_one_s_own(tiny_model: Path, three: Path, tweets: Path, tmp_path: Path) -> None:
    demos = tmp_path / "demos.csv"
    rows = [(f"d{i}", f"example {i}", LABELS3[i % 3]) for i in range(9)]
    pd.DataFrame(rows, columns=["id", "text", "label"]).to_csv(demos, index=False)
    clf = _tiny(tiny_model, three, method="k-shot", k=2, demos=str(demos), scoring="loglik")
    drawn = list(clf._runner.plan.demos)
    assert len(drawn) == 6 and {label for _, label in drawn} == set(LABELS3)  # k per label
    assert [label for _, label in drawn[:3]] == [label for _, label in drawn[3:]]  # labels take turns
    run = sentiq.evaluate(
        str(tiny_model), "k-shot", prompt=str(three), demos=str(demos), k=1, scoring="loglik", dataset=str(tweets), n=6
    )
    config = run.runs[0].config
    assert config["method_settings"]["demos"] == str(demos) and len(config["demonstrations"]) == 3
    with pytest.raises(sentiq.OptionError, match="is the dataset being evaluated"):
        sentiq.evaluate(str(tiny_model), "k-shot", prompt=str(three), demos=str(tweets), dataset=str(tweets), n=6)
    out = tmp_path / "out.csv"
    args = [
        "classify",
        "--input",
        str(tweets),
        "--output",
        str(out),
        "--model",
        str(tiny_model),
        "--prompt",
        str(three),
    ]
    result = runner.invoke(app, [*args, "--method", "k-shot", "--k", "1", "--demos", str(demos)])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out)["label"]) <= {*LABELS3, "invalid"}


def test_confusion_matrices_have_a_row_per_gold_label_and_a_column_for_invalid_answers() -> None:
    from sentiq.workflows.plots import confusion_counts

    gold = ["negative", "neutral", "positive", "positive"]
    counts, columns = confusion_counts(gold, ["negative", "positive", "invalid", "positive"], LABELS3)
    assert columns == [*LABELS3, "invalid"] and counts.shape == (3, 4)  # no row for 'invalid'
    assert counts.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    counts, columns = confusion_counts(gold, ["negative", "neutral", "positive", "positive"], LABELS3)
    assert columns == list(LABELS3) and counts.shape == (3, 3)  # no invalid answer, no column for it


def test_a_stratified_sample_larger_than_the_data_is_refused(tiny_model: Path, three: Path, tweets: Path) -> None:
    with pytest.raises(sentiq.DataError, match="n=99 is more than the 15 texts of the dataset"):
        sentiq.evaluate(str(tiny_model), "loglik", prompt=str(three), dataset=str(tweets), n=99, sample="stratified")


def test_a_sample_of_one_label_is_said_and_no_search_is_run_on_it(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"review {i} of a film" for i in range(8)], "label": ["positive"] * 8}).to_csv(
        data, index=False
    )
    args = ["evaluate", "--model", str(tiny_model), "--dataset", str(data), "--n", "6", "--sample", "stratified"]
    result = runner.invoke(
        app, [*args, "--output-dir", str(tmp_path / "runs"), "--run-id", "one"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    assert "The sample holds texts of one label" in result.stdout
    assert "macro F1" in result.stdout and "one label" in result.stdout.split("macro F1")[1].splitlines()[0]
    metrics = json.loads((tmp_path / "runs" / "one" / "metrics.json").read_text())
    assert metrics["labels_in_sample"] == 1 and metrics["accuracy"] is not None
    assert metrics["macro_precision"] is metrics["macro_recall"] is metrics["macro_f1"] is None  # as the table says
    page = tmp_path / "report.html"
    compared = runner.invoke(app, ["compare", "--results-dir", str(tmp_path / "runs"), "--html", str(page)])
    assert compared.exit_code == 0, compared.output
    assert "one label" in compared.stdout and ">one label<" in page.read_text(encoding="utf-8")
    for command in (["tune-prompt", "--n", "6"], ["tune-sampling", "--n", "6"]):
        tuned = runner.invoke(
            app,
            [*command, "--model", str(tiny_model), "--dataset", str(data), "--sample", "stratified"]
            + ["--output-dir", str(tmp_path / "tuning")],
        )
        assert tuned.exit_code == 1, tuned.output
        assert "the tuning texts are all labelled positive: a search needs texts of at least two labels" in tuned.output
    assert not (tmp_path / "tuning").exists() or not any((tmp_path / "tuning").rglob("best.json"))


def test_demonstrations_from_a_link_to_the_texts_measured_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    import os

    data = tmp_path / "data.csv"
    pd.DataFrame(
        {"id": [f"r{i}" for i in range(8)], "text": [f"film {i}" for i in range(8)], "label": [0, 1] * 4}
    ).to_csv(data, index=False)
    linked = tmp_path / "demos.csv"
    os.link(data, linked)
    args = ["--model", str(tiny_model), "--method", "k-shot", "--k", "1", "--demos", str(linked)]
    result = runner.invoke(app, ["evaluate", *args, "--dataset", str(data), "--n", "4"])
    assert result.exit_code == 1 and "is the --dataset being evaluated" in result.output
    result = runner.invoke(app, ["classify", *args, "--input", str(data), "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 1 and "holds texts being classified (--input" in result.output
    assert not (tmp_path / "out.csv").exists()
    result = runner.invoke(app, ["classify", *args[:-1], str(data), "--input", str(tmp_path)])
    assert result.exit_code == 1 and "holds texts being classified" in result.output  # a file of the input folder


def test_a_label_map_value_given_twice_is_refused(tiny_model: Path, labelled_csv: Path) -> None:
    args = ["evaluate", "--model", str(tiny_model), "--dataset", str(labelled_csv), "--n", "4"]
    result = runner.invoke(app, [*args, "--label-map", "1=positive,0=negative,c=positive,c=negative"])
    assert result.exit_code == 1
    assert "--label-map gives the value 'c' twice" in result.output


def test_without_n_a_small_dataset_gives_the_largest_sample_it_allows(tiny_model: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    pd.DataFrame({"text": [f"film {i}" for i in range(12)], "label": [1, 0] * 6}).to_csv(small, index=False)
    base = ["evaluate", "--model", str(tiny_model), "--dataset", str(small), "--output-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*base, "--run-id", "fit"])
    assert result.exit_code == 0, result.output
    assert (
        "no --n given: the dataset allows a balanced sample of 12 (6 positive and 6 negative), taken" in result.stderr
    )
    assert json.loads((tmp_path / "runs" / "fit" / "metrics.json").read_text())["n"] == 12
    strict = runner.invoke(app, [*base, "--run-id", "strict", "--n", "200"])  # given: refused as ever
    assert strict.exit_code == 1 and "--n 200 needs 100 positive and 100 negative texts" in strict.output
    three = tmp_path / "three.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(9)], "label": ["negative", "positive", "positive"] * 3}).to_csv(
        three, index=False
    )
    args = ["evaluate", "--model", str(tiny_model), "--dataset", str(three), "--prompt", "three-way"]
    missing = runner.invoke(app, [*args, "--output-dir", str(tmp_path / "runs"), "--run-id", "three"])
    assert missing.exit_code == 0, missing.output
    assert "the dataset has no neutral text; all its 9 texts taken" in missing.stderr
    config = json.loads((tmp_path / "runs" / "three" / "config.json").read_text())
    assert config["n"] == 9 and config["sample"] == "stratified"
