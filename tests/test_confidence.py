"""Calibration and selective metrics, each checked against a plain computation written out here, and the
figures a run writes checked against the same computation on its predictions file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sentiq
from sentiq.predictions import LabelSet
from sentiq.workflows.confidence import (
    aurc,
    confidence_metrics,
    coverage_at,
    ece,
    risk_coverage,
    run_probabilities,
    scored,
)

BINARY = ("positive", "negative")
THREE = ("positive", "negative", "neutral")


# -- plain reference computations ------------------------------------------------------------------
def ref_ece(conf, correct, bins=15):
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [i for i, c in enumerate(conf) if (lo < c <= hi) or (b == 0 and c == 0)]
        if inside:
            acc = sum(correct[i] for i in inside) / len(inside)
            mean = sum(conf[i] for i in inside) / len(inside)
            total += len(inside) * abs(acc - mean)
    return total / len(conf)


def ref_brier(probs, gold, labels):
    onehot = [[1.0 if g == lab else 0.0 for lab in labels] for g in gold]
    per = [sum((p - y) ** 2 for p, y in zip(row, hot)) for row, hot in zip(probs, onehot)]
    mean = sum(per) / len(per)
    return mean / 2 if len(labels) == 2 else mean  # binary: (p_positive - y)^2, as usually written


def ref_log_loss(probs, gold, labels):
    return -sum(np.log(row[labels.index(g)]) for row, g in zip(probs, gold)) / len(gold)


def ref_auroc(p_pos, is_pos):
    pos = [p for p, y in zip(p_pos, is_pos) if y]
    neg = [p for p, y in zip(p_pos, is_pos) if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def ref_aurc(conf, correct):
    """Distinct confidences: the mean error rate of the k most confident texts, k = 1..n."""
    order = sorted(range(len(conf)), key=lambda i: -conf[i])
    risks = [sum(not correct[i] for i in order[:k]) / k for k in range(1, len(conf) + 1)]
    return sum(risks) / len(risks)


def ref_coverage_at(conf, correct, accuracy):
    best = 0.0
    for t in set(conf):
        kept = [i for i, c in enumerate(conf) if c >= t]
        if sum(correct[i] for i in kept) / len(kept) >= accuracy:
            best = max(best, len(kept) / len(conf))
    return best


def _random_run(n: int, labels, seed: int):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(labels)) * 0.7, size=n)
    gold_idx = np.array(
        [rng.choice(len(labels), p=p) if rng.random() < 0.8 else rng.integers(len(labels)) for p in probs]
    )
    given = probs.argmax(axis=1)
    return probs, [labels[i] for i in given], [labels[i] for i in gold_idx]


@pytest.mark.parametrize("labels", [BINARY, THREE])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_figure_equals_a_plain_computation(labels, seed: int) -> None:
    probs, given, gold = _random_run(97, labels, seed)
    s = scored(probs, given, gold, labels)
    m = confidence_metrics(s, labels)
    conf = [float(row[labels.index(g)]) for row, g in zip(probs, given)]
    correct = [g == y for g, y in zip(given, gold)]
    assert m["scored"] == 97
    assert m["mean_confidence"] == pytest.approx(np.mean(conf))
    assert m["ece"] == pytest.approx(ref_ece(conf, correct), abs=1e-12)
    assert m["brier"] == pytest.approx(ref_brier(probs, gold, list(labels)), abs=1e-12)
    assert m["log_loss"] == pytest.approx(ref_log_loss(probs, gold, list(labels)), abs=1e-12)
    assert m["aurc"] == pytest.approx(ref_aurc(conf, correct), abs=1e-12)
    for a, name in [(0.9, "coverage_at_90"), (0.95, "coverage_at_95"), (0.99, "coverage_at_99")]:
        assert m[name] == pytest.approx(ref_coverage_at(conf, correct, a))
    if labels == BINARY:
        assert m["auroc"] == pytest.approx(ref_auroc(probs[:, 0], [y == "positive" for y in gold]), abs=1e-12)
    else:
        assert m["auroc"] is None  # AUROC is reported for the binary set alone


def test_ece_of_a_calibrated_and_an_overconfident_run() -> None:
    conf = np.full(10, 0.8)
    assert ece(conf, np.array([True] * 8 + [False] * 2)) == pytest.approx(0.0)
    assert ece(conf, np.array([True] * 5 + [False] * 5)) == pytest.approx(0.3)
    # a confidence on a bin's edge belongs to the lower bin: 2/3 = 10/15 sits with (9/15, 10/15]
    edge = np.array([10 / 15, 0.61])
    assert ece(edge, np.array([True, False])) == pytest.approx(abs(0.5 - (10 / 15 + 0.61) / 2))


def test_ties_are_answered_together() -> None:
    """Texts of equal confidence cannot be told apart: no cut between them, and the risk within them is
    their expectation, whatever order they came in."""
    conf = np.array([0.9, 0.7, 0.7, 0.7, 0.7])
    correct = np.array([True, True, False, True, False])
    coverage, risk = risk_coverage(conf, correct)
    assert coverage.tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert risk.tolist() == pytest.approx([0, 0.25, 1 / 3, 0.375, 0.4])
    flipped = risk_coverage(conf, correct[[0, 4, 3, 2, 1]])[1]
    assert flipped.tolist() == pytest.approx(risk.tolist())
    assert coverage_at(conf, correct, 0.9) == pytest.approx(0.2)  # 0.9 alone; all the 0.7s together fall to 0.6
    assert coverage_at(conf, correct, 0.6) == pytest.approx(1.0)
    assert coverage_at(np.array([0.6, 0.6]), np.array([False, True]), 0.9) == 0.0  # no cut reaches it
    assert aurc(conf, correct) == pytest.approx(np.mean([0, 0.25, 1 / 3, 0.375, 0.4]))


def test_rows_without_a_probability_or_a_label_of_the_set_are_not_scored() -> None:
    probs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8], [0.5, 0.5]])
    s = scored(
        probs, ["positive", "positive", "negative", "invalid"], ["positive", "negative", "positive", "negative"], BINARY
    )
    assert len(s.given) == 2 and s.correct.tolist() == [True, False]
    none = confidence_metrics(scored(np.zeros((0, 2)), [], [], BINARY), BINARY)
    assert none["scored"] == 0 and none["ece"] is None and none["coverage_at_95"] is None
    # one text; one gold label: no AUROC, the rest computed
    one = confidence_metrics(scored(np.array([[0.7, 0.3]]), ["positive"], ["positive"], BINARY), BINARY)
    assert one["auroc"] is None and one["ece"] == pytest.approx(0.3) and one["coverage_at_99"] == 1.0


def test_log_loss_stays_finite_at_a_probability_of_zero() -> None:
    s = scored(np.array([[1.0, 0.0], [0.0, 1.0]]), ["positive", "negative"], ["negative", "negative"], BINARY)
    m = confidence_metrics(s, BINARY)
    assert np.isfinite(m["log_loss"]) and m["log_loss"] > 10


def test_probabilities_read_from_a_predictions_file() -> None:
    rows = pd.DataFrame({"p_positive": ["0.25", "", None]})
    got = run_probabilities(rows, LabelSet(BINARY))
    assert got[0].tolist() == [0.25, 0.75] and np.isnan(got[1:]).all()
    three = pd.DataFrame({"p_positive": [0.2], "p_negative": [0.3], "p_neutral": [0.5]})
    assert run_probabilities(three, LabelSet(THREE)).tolist() == [[0.2, 0.3, 0.5]]
    assert run_probabilities(pd.DataFrame(), LabelSet(THREE)).shape == (0, 3)


@pytest.mark.parametrize("method", ["loglik", "zero-shot", "sampling"])
def test_a_runs_figures_equal_a_plain_computation_on_its_predictions_file(
    answering_model: Path, labelled_csv: Path, tmp_path: Path, method: str
) -> None:
    evaluation = sentiq.evaluate(
        str(answering_model),
        method,
        dataset=str(labelled_csv),
        n=12,
        run_id="r",
        device="cpu",
        dtype="float32",
        max_new_tokens=1,
        samples=3,
    )
    (folder,) = evaluation.save(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = pd.read_csv(folder / "predictions.csv", dtype={"gold": str, "predicted": str})
    have = rows.dropna(subset=["p_positive"])
    have = have[have["predicted"].isin(BINARY)]
    assert metrics["scored"] == len(have)
    answered = rows[rows["predicted"] != "invalid"]
    assert len(have) == len(answered) > 0  # every method gives every text it labels a probability
    assert method == "sampling" or len(have) == 12
    probs = np.column_stack([have["p_positive"], 1 - have["p_positive"]])
    gold, given = list(have["gold"]), list(have["predicted"])
    conf = [row[BINARY.index(g)] for row, g in zip(probs, given)]
    correct = [g == y for g, y in zip(given, gold)]
    assert round(metrics["ece"], 3) == round(ref_ece(conf, correct), 3)
    assert round(metrics["brier"], 3) == round(ref_brier(probs, gold, list(BINARY)), 3)
    assert round(metrics["log_loss"], 3) == round(ref_log_loss(probs, gold, list(BINARY)), 3)


def test_pairs_reference_is_symmetric() -> None:
    """The AUROC reference itself: a perfect ranking is 1, reversed 0, ties half."""
    assert ref_auroc([0.9, 0.1], [True, False]) == 1.0
    assert ref_auroc([0.1, 0.9], [True, False]) == 0.0
    assert ref_auroc([0.5, 0.5], [True, False]) == 0.5
