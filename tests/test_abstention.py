"""Abstention: a threshold given or chosen for a target accuracy on a fit's held-out predictions, texts
below it labelled 'uncertain' with their probabilities kept, and everything a careless or hostile
caller can give refused in one line with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import evaluate_args
from typer.testing import CliRunner

import sentiq
from sentiq.abstention import abstained, accuracy_bound, guaranteed
from sentiq.cli import app
from sentiq.errors import OptionError
from sentiq.predictions import Prediction
from sentiq.settings import MethodConfig

runner = CliRunner()
TEXTS = ["an absolute delight, I loved it", "a dull boring mess of a movie", "fine", "it was ok I guess"]


# -- the threshold and its guarantee ---------------------------------------------------------------
def test_a_label_below_the_threshold_is_uncertain_with_its_probabilities_kept() -> None:
    p = Prediction.of("positive", [0.7, 0.3], ("positive", "negative"))
    assert abstained(p, 0.7) is p  # at the threshold: answered
    kept = abstained(p, 0.71)
    assert kept.label == "uncertain" and kept.p_positive == 0.7 and kept.scores == p.scores
    invalid = Prediction("invalid", None, answer="meh")
    assert abstained(invalid, 0.5) is invalid  # an answer that names no label stays invalid
    assert abstained(Prediction("positive", None, answer="Positive!"), 0.5).label == "uncertain"  # no probability


def test_the_bound_is_the_one_sided_clopper_pearson_bound() -> None:
    from scipy.stats import binomtest

    for right, n in [(95, 100), (300, 300), (1, 7), (0, 4)]:
        two_sided = binomtest(right, n).proportion_ci(confidence_level=0.90, method="exact").low
        assert accuracy_bound(right, n) == pytest.approx(two_sided, abs=1e-9)
    assert accuracy_bound(0, 0) == 0.0


def _held_out(n: int, seed: int):
    """Confidences in (0.5, 1) whose correctness follows them: the calibrated case."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.5, 1.0, n)
    return confidence, rng.random(n) < confidence


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_chosen_threshold_keeps_its_promise_on_the_texts_it_was_chosen_on(seed: int) -> None:
    confidence, correct = _held_out(2000, seed)
    t = guaranteed(confidence, correct, 0.9, 2)
    answered = confidence >= t.confidence
    assert t.coverage == pytest.approx(answered.mean())
    assert correct[answered].mean() >= t.bound >= 0.9
    # the bound costs coverage: the observed threshold answers at least as many
    assert t.observed_coverage >= t.coverage and t.observed_confidence <= t.confidence
    assert t.held_out == 2000 and t.target_accuracy == 0.9


def test_the_guarantee_holds_on_new_texts_from_the_same_source() -> None:
    """Across many draws, the answered accuracy on fresh texts falls below the target rarely (the bound
    is at 95% for every threshold of the grid at once): at most a few in a hundred."""
    misses = 0
    for seed in range(100):
        confidence, correct = _held_out(1000, seed)
        t = guaranteed(confidence, correct, 0.8, 2)
        fresh_conf, fresh_correct = _held_out(20000, 10_000 + seed)
        misses += fresh_correct[fresh_conf >= t.confidence].mean() < 0.8
    assert misses <= 5


def test_a_target_no_threshold_can_promise_is_refused_with_the_best_bound() -> None:
    confidence, correct = _held_out(60, 3)
    with pytest.raises(
        OptionError,
        match=r"no threshold promises it on the fit's 60 held-out texts \(the best is 0\.\d+ with 95% confidence, answering \d+% at confidence",
    ):
        guaranteed(confidence, correct, 0.99, 2)
    with pytest.raises(OptionError, match="no held-out predictions"):
        guaranteed([], [], 0.9, 2)


# -- the options --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5, float("nan"), float("inf")])
def test_a_share_outside_0_1_is_refused(value: float) -> None:
    with pytest.raises(OptionError, match="--min-confidence must be between 0 and 1"):
        MethodConfig(min_confidence=value)
    with pytest.raises(OptionError, match="--target-accuracy must be between 0 and 1"):
        MethodConfig(method="probe", fit="somewhere", target_accuracy=value)


@pytest.mark.parametrize("value", [True, "0.9", [0.9], b"0.9"])
def test_a_share_of_the_wrong_kind_is_named(value: object) -> None:
    with pytest.raises(TypeError, match="min_confidence must be a number in"):
        MethodConfig(min_confidence=value)


def test_abstention_options_that_cannot_go_together() -> None:
    with pytest.raises(OptionError, match="not both"):
        MethodConfig(method="probe", fit="f", min_confidence=0.9, target_accuracy=0.9)
    with pytest.raises(OptionError, match="--target-accuracy chooses a threshold on a fit's held-out"):
        MethodConfig(target_accuracy=0.9)  # loglik without a fit
    with pytest.raises(OptionError, match="--target-accuracy chooses a threshold"):
        MethodConfig(method="zero-shot", target_accuracy=0.9)
    assert MethodConfig(min_confidence=0.9).relevant()["min_confidence"] == 0.9
    assert "min_confidence" not in MethodConfig().relevant()  # recorded only when set


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--min-confidence", "0"], "--min-confidence must be between 0 and 1"),
        (["--min-confidence", "1"], "--min-confidence must be between 0 and 1"),
        (["--min-confidence", "nan"], "--min-confidence must be between 0 and 1"),
        (["--target-accuracy", "0.9"], "--target-accuracy chooses a threshold"),
        (["--target-accuracy", "0.9", "--min-confidence", "0.8"], "not both"),
    ],
)
def test_the_command_line_refuses_in_one_line_and_writes_nothing(
    tiny_model: Path, labelled_csv: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    for command in (
        evaluate_args(tiny_model, labelled_csv, tmp_path / "res", "r", 4, *extra),
        [
            "classify",
            "--model",
            str(tiny_model),
            "--input",
            str(labelled_csv),
            "--output",
            str(tmp_path / "o.csv"),
            *extra,
        ],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code != 0
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "res").exists() and not (tmp_path / "o.csv").exists()
    result = runner.invoke(app, ["classify", "--model", str(tiny_model), "--min-confidence", "high", "fine"])
    assert result.exit_code == 2 and "--min-confidence" in result.stderr


# -- abstaining, end to end -----------------------------------------------------------------------------
def test_classify_labels_uncertain_and_says_how_many(tiny_model: Path, tmp_path: Path) -> None:
    plain = sentiq.load(str(tiny_model), device="cpu", dtype="float32").classify(TEXTS)
    cut = sorted(r.scores[r.label] for r in plain)[1] + 1e-9  # the two least confident abstain
    clf = sentiq.load(str(tiny_model), device="cpu", dtype="float32", min_confidence=cut)
    assert clf.abstention == {"confidence": cut}
    got = clf.classify(TEXTS)
    assert [r.label for r in got].count("uncertain") == 2
    for before, after in zip(plain, got):
        assert after.scores == pytest.approx(before.scores)  # probabilities kept
        assert after.label in (before.label, "uncertain")
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS))
    out = tmp_path / "out.csv"
    args = ["classify", "--model", str(tiny_model), "--input", str(source), "--output", str(out)]
    result = runner.invoke(app, [*args, "--min-confidence", str(cut)])
    assert result.exit_code == 0, result.output
    assert "2 texts labelled uncertain" in result.stderr
    assert list(pd.read_csv(out)["label"]).count("uncertain") == 2


def test_evaluate_measures_every_text_and_those_answered(tiny_model: Path, labelled_csv: Path) -> None:
    plain = sentiq.evaluate(str(tiny_model), "loglik", dataset=str(labelled_csv), n=12, device="cpu", dtype="float32")
    p = plain.runs[0].predictions
    confidence = np.maximum(p["p_positive"], 1 - p["p_positive"])
    levels = np.unique(confidence)
    widest = int(np.argmax(np.diff(levels)))  # a cut far from every text's (rounded) confidence
    cut = float(levels[widest : widest + 2].mean())
    run = sentiq.evaluate(
        str(tiny_model), "loglik", dataset=str(labelled_csv), n=12, device="cpu", dtype="float32", min_confidence=cut
    ).runs[0]
    q, before = run.quality, plain.runs[0].quality
    assert q.accuracy == before.accuracy and q.ece == before.ece  # every text, as if it had not abstained
    answered = confidence >= cut
    assert q.uncertain == int((~answered).sum()) and q.answered == pytest.approx(answered.mean())
    assert q.selective_accuracy == pytest.approx((p["predicted"] == p["gold"])[answered].mean())
    low, high = q.selective_accuracy_interval
    assert low <= q.selective_accuracy <= high
    assert run.config["method_settings"]["min_confidence"] == cut
    assert run.config["abstention"] == {"confidence": cut}
    assert set(run.predictions["predicted"]) <= {"positive", "negative", "uncertain"}


def test_a_fit_keeps_its_held_out_predictions_and_a_target_chooses_the_threshold(tiny_fit, tiny_model: Path) -> None:
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(tiny_fit.folder))
    confidence, correct = fit.held_out(probe=True)
    assert len(confidence) == 24 and ((confidence >= 0.5) & (confidence <= 1)).all()
    assert correct.mean() == pytest.approx(tiny_fit.probe.accuracy)  # the cross-validated score's own predictions
    target = 0.5
    clf = sentiq.load(
        str(tiny_model), method="probe", fit=str(tiny_fit.folder), target_accuracy=target, device="cpu", dtype="float32"
    )
    record = clf.abstention
    assert record["target_accuracy"] == target and record["bound"] >= target
    assert record == guaranteed(confidence, correct, target, 2).record()
    assert 0 < record["coverage"] <= 1 and record["held_out"] == 24


def test_a_target_the_fit_cannot_promise_is_one_line(tiny_fit, tiny_model: Path, tmp_path: Path) -> None:
    args = ["classify", "--model", str(tiny_model), "--method", "probe", "--fit", str(tiny_fit.folder)]
    result = runner.invoke(app, [*args, "--target-accuracy", "0.999", "--output", str(tmp_path / "o.csv"), "fine"])
    assert result.exit_code != 0 and "no threshold promises it on the fit's 24 held-out texts" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.csv").exists()


def test_a_fit_without_held_out_predictions_asks_for_a_refit(tiny_fit, tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.io.fits import read_fit, write_fit

    card, arrays = read_fit(tiny_fit.folder)
    old = {k: v for k, v in arrays.items() if not k.endswith("held_out") and k != "gold"}
    keep = {k: v for k, v in card.items() if k not in ("format", "weights_sha256", "card_sha256")}
    folder = tmp_path / "old-fit"
    write_fit(folder, {**keep, "versions": {**card["versions"], "sentiq": "0.4.0"}}, old)
    args = ["classify", "--model", str(tiny_model), "--method", "probe", "--fit", str(folder), "fine"]
    assert runner.invoke(app, args).exit_code == 0  # still a usable fit without a target
    result = runner.invoke(app, [*args, "--target-accuracy", "0.8"])
    assert result.exit_code != 0
    assert "keeps no held-out predictions (fitted by sentiq 0.4.0): fit again" in result.stderr


def test_the_service_says_where_it_abstains_and_counts_the_uncertain(tiny_model: Path) -> None:
    from fastapi.testclient import TestClient
    from test_serve import _wait_ready

    from sentiq.serve.app import create_app
    from sentiq.serve.settings import ServeSettings

    plain = sentiq.load(str(tiny_model), device="cpu", dtype="float32").classify(TEXTS)
    cut = sorted(r.scores[r.label] for r in plain)[0] + 1e-9
    make = lambda: sentiq.load(str(tiny_model), device="cpu", dtype="float32", min_confidence=cut)  # noqa: E731
    with TestClient(create_app(make, ServeSettings())) as client:
        _wait_ready(client)
        body = client.post("/v1/classify", json={"texts": TEXTS}).json()
    assert body["abstention"] == {"confidence": cut} and body["uncertain"] == 1
    uncertain = [r for r in body["results"] if r["label"] == "uncertain"]
    assert len(uncertain) == 1 and math.isclose(sum(uncertain[0]["scores"].values()), 1, abs_tol=1e-6)


def test_a_run_records_the_threshold_it_abstained_at(tiny_model: Path, labelled_csv: Path, tmp_path: Path) -> None:
    args = evaluate_args(tiny_model, labelled_csv, tmp_path, "abstains", 6, "--min-confidence", "0.5001")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "abstains" / "metrics.json").read_text())
    assert {"uncertain", "answered", "selective_accuracy", "selective_accuracy_interval"} <= set(metrics)
    assert "acc. answered" in result.stdout
    page = tmp_path / "report.html"
    assert (
        runner.invoke(app, ["compare", "--results-dir", str(tmp_path), "--html", str(page), "--write"]).exit_code == 0
    )
    ranking = pd.read_csv(tmp_path / "comparison.csv")
    assert ranking["uncertain"].tolist() == [metrics["uncertain"]]
    assert f"below confidence 0.5001: {metrics['uncertain']} uncertain" in page.read_text()


def test_a_fit_and_its_target_go_to_the_methods_that_read_the_fit() -> None:
    from sentiq.api.options import method_configs

    loglik, probe = method_configs(["loglik", "probe"], fit="f", calibrate="fitted", target_accuracy=0.9)
    assert (loglik.calibrate, loglik.fit, loglik.target_accuracy) == ("fitted", "f", 0.9)
    assert (probe.calibrate, probe.fit, probe.target_accuracy) == ("none", "f", 0.9)  # its probabilities are fitted
    zero, probe = method_configs(["zero-shot", "probe"], fit="f", target_accuracy=0.9)
    assert (zero.fit, zero.target_accuracy) == (None, None) and probe.target_accuracy == 0.9
    zero, loglik = method_configs(["zero-shot", "loglik"], min_confidence=0.8)
    assert zero.min_confidence == loglik.min_confidence == 0.8  # a threshold of one's own goes to every method
