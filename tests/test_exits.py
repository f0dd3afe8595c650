"""Early exits: the thresholds chosen on held-out predictions, the engine's spans of layers (no layer run
twice, each exit's state the one a cut model gives), fits with exits, their predictions on every surface,
and every refusal."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli.app import app
from sentiq.errors import OptionError
from sentiq.learn_settings import FitSettings
from sentiq.methods.exits import cascaded, choose_thresholds, routed
from tests.conftest import FIT_TEXTS, fit_data

runner = CliRunner()
TEXTS = [f"{FIT_TEXTS[i % 2]} {i}" for i in range(8)] + ["so so", "hello there", "a film", "it was a movie"]


# -- thresholds --------------------------------------------------------------------------------------


def test_a_text_leaves_at_the_first_exit_above_its_threshold() -> None:
    conf = [np.array([0.9, 0.6, 0.6, 0.5]), np.array([0.5, 0.95, 0.7, 0.5]), np.array([0.5, 0.5, 0.5, 0.5])]
    assert routed(conf, [0.8, 0.9]).tolist() == [0, 1, 2, 2]
    assert routed(conf, [0.6, 0.9]).tolist() == [0, 1, 2, 2]  # above, not at: 0.6 does not leave at 0.6
    assert routed(conf, [1.0, 1.0]).tolist() == [2, 2, 2, 2]  # 1.0: no text leaves early
    assert routed(conf, [0.0, 1.0]).tolist() == [0, 0, 0, 0]  # 0: every text leaves there


def test_the_cascade_gives_each_text_its_exits_probabilities() -> None:
    rng = np.random.default_rng(0)
    probs = [rng.dirichlet([1, 1, 1], size=20) for _ in range(3)]
    where, got = cascaded(probs, [0.7, 0.6])
    assert set(where.tolist()) <= {0, 1, 2}
    for i, j in enumerate(where):
        assert got[i].tolist() == probs[j][i].tolist()


def _judge(
    probs: list[np.ndarray], gold: np.ndarray, thresholds: list[float], layers: list[int]
) -> tuple[float, float]:
    """Mean layers and accuracy of a cascade, as plain loops."""
    cost = right = 0
    for i in range(len(gold)):
        j = next((j for j, t in enumerate(thresholds) if probs[j][i].max() > t), len(probs) - 1)
        cost += layers[j]
        right += int(probs[j][i].argmax() == gold[i])
    return cost / len(gold), right / len(gold)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_loss", [0.0, 0.02, 0.1])
def test_chosen_thresholds_keep_within_the_loss_and_beat_every_single_exit_threshold(
    seed: int, max_loss: float
) -> None:
    """On held-out predictions the chosen cascade loses at most max_loss against the last exit, and
    runs no more layers than the best threshold at the first exit alone (found by trying every one)."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, size=300)
    probs = []
    for skill in (0.8, 1.6, 3.0):  # deeper exits separate better
        logit = skill * (2 * gold - 1) + rng.normal(size=300)
        p = 1 / (1 + np.exp(-logit))
        probs.append(np.stack([1 - p, p], axis=1))
    layers = [6, 12, 24]
    chosen = choose_thresholds(probs, gold, layers, max_loss)
    mean_layers, accuracy = _judge(probs, gold, list(chosen.thresholds), layers)
    last = float((probs[-1].argmax(axis=1) == gold).mean())
    assert chosen.last_accuracy == last and accuracy == pytest.approx(chosen.accuracy)
    assert accuracy >= last - max_loss - 1e-12 and mean_layers == pytest.approx(chosen.mean_cost)
    assert sum(chosen.shares) == pytest.approx(1.0) and len(chosen.shares) == 3
    best_single = min(
        m
        for t in [*np.unique(probs[0].max(axis=1)) - 1e-9, 1.0]
        for m, a in [_judge(probs, gold, [t, 1.0], layers)]
        if a >= last - max_loss - 1e-12
    )
    assert chosen.mean_cost <= best_single + 1e-9


def test_an_exit_that_is_always_wrong_lets_no_text_out_and_one_that_is_right_lets_all() -> None:
    gold = np.array([0, 1] * 50)
    right = np.eye(2)[gold] * 0.9 + 0.05
    wrong = np.eye(2)[1 - gold] * 0.9 + 0.05
    chosen = choose_thresholds([wrong, right], gold, [4, 8], max_loss=0.0)
    assert chosen.thresholds == (1.0,) and chosen.shares == (0.0, 1.0) and chosen.mean_cost == 8
    chosen = choose_thresholds([right, right], gold, [4, 8], max_loss=0.0)
    assert chosen.shares == (1.0, 0.0) and chosen.mean_cost == 4 and chosen.accuracy == 1.0


# -- the engine ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep_engine(deep_model: Path):
    from sentiq.core.engine import Engine
    from sentiq.core.models import load_model

    return Engine(load_model(str(deep_model), "cpu", "float32"))


def _states(engine, layers: int | None, bodies, prefix) -> np.ndarray:
    from sentiq.core.batching import gathered

    return gathered(engine.state_batches(prefix, bodies, layers), (len(bodies), engine.model.config.hidden_size))


@pytest.mark.parametrize("rows", [None, 1, 3])
def test_each_exit_gives_exactly_the_state_a_model_cut_there_gives(deep_engine, rows: int | None) -> None:
    """Whichever exit a text leaves at, and however the texts are batched, its state is the one the
    model cut to that many layers gives: the spans carry the hidden states on, no layer run twice."""
    from sentiq.core.batching import gathered

    deep_engine.planner.max_rows = rows
    try:
        prefix = deep_engine.encode("system: label the text")
        bodies = [deep_engine.encode(t) for t in TEXTS]
        exits = [1, 3, 4]
        want = {k: _states(deep_engine, k, bodies, prefix) for k in exits}
        chosen = np.arange(len(TEXTS)) % 3  # text i leaves at exit i % 3

        def leave(j: int, states: np.ndarray) -> np.ndarray:
            # which rows are which: find each state among the texts' own at that exit
            found = [int(np.abs(want[exits[j]] - s).sum(axis=1).argmin()) for s in states]
            return np.array([chosen[i] == j for i in found])

        got = gathered(deep_engine.exit_batches(prefix, bodies, exits, leave), (len(TEXTS), 33))
        assert got[:, 0].tolist() == chosen.tolist()
        for i, j in enumerate(chosen):
            assert np.array_equal(got[i, 1:], want[exits[j]][i]), (i, j)
    finally:
        deep_engine.planner.max_rows = None


def test_the_texts_that_go_on_are_batched_anew(deep_engine) -> None:
    """Three batches of two each keep one text going: the next span runs those three in two batches
    (filled from all of them), not three half-empty ones."""
    from sentiq.core.batching import gathered

    deep_engine.planner.max_rows = 2
    deep_engine.planner.stats.clear()
    try:
        prefix = deep_engine.encode("system")
        base = deep_engine.encode(FIT_TEXTS[0])
        vocab = deep_engine.model.config.vocab_size
        bodies = [[*base[:-1], (base[-1] + i) % vocab] for i in range(6)]  # one length: batches of two
        order = list(range(6))  # the planner's, lengths tied
        going = {order[0], order[2], order[4]}  # one of each first batch
        want = _states(deep_engine, 1, bodies, prefix)
        deep_engine.planner.stats.clear()

        def leave(j: int, states: np.ndarray) -> np.ndarray:
            found = [int(np.abs(want - s).sum(axis=1).argmin()) for s in states]
            return np.array([i not in going for i in found])

        got = gathered(deep_engine.exit_batches(prefix, bodies, [1, 4], leave), (6, 33))
        assert [i for i in range(6) if got[i, 0] == 1] == sorted(going)
        assert [b.rows for b in deep_engine.planner.stats] == [2, 2, 2, 2, 1]
    finally:
        deep_engine.planner.max_rows = None


def test_texts_are_carried_a_group_at_a_time() -> None:
    from sentiq.core.engine import _groups

    assert list(_groups([5, 5, 5, 20, 1, 1], 10)) == [[3], [0, 1], [2, 4, 5]]  # longest first
    assert list(_groups([], 10)) == [] and list(_groups([3], 1)) == [[0]]


def test_exit_spans_leave_the_model_whole_after(deep_engine) -> None:
    prefix = deep_engine.encode("system")
    bodies = [deep_engine.encode(t) for t in TEXTS[:3]]
    before = _states(deep_engine, None, bodies, prefix)
    list(deep_engine.exit_batches(prefix, bodies, [2, 4], lambda j, s: np.zeros(len(s), dtype=bool)))
    assert len(deep_engine.model.model.layers) == 4 and not isinstance(
        deep_engine.model.model.norm, __import__("torch").nn.Identity
    )
    assert np.array_equal(_states(deep_engine, None, bodies, prefix), before)


# -- fits with exits -----------------------------------------------------------------------------------


def test_a_fit_with_exits_records_each_exit(exits_fit) -> None:
    card = exits_fit.card
    assert exits_fit.folder.name == "classifier-n40-exits1-2"
    assert [e["layer"] for e in card["exits"]] == [1, 2, 4] and card["layer"] == 4
    assert card["exits"][-1]["threshold"] is None and all(0 <= e["threshold"] <= 1 for e in card["exits"][:-1])
    assert sum(e["expected_share"] for e in card["exits"]) == pytest.approx(1.0)
    run = card["early_exit"]
    assert run["max_loss"] == 0.01 and run["cv_accuracy"] >= run["last_cv_accuracy"] - 0.01
    assert 1 <= run["mean_layers"] <= 4 and run["expected_speedup"] == pytest.approx(4 / run["mean_layers"])
    with np.load(exits_fit.folder / "weights.npz", allow_pickle=False) as npz:
        assert {"exit1_coef", "exit2_coef", "exit1_held_out", "probe_coef"} <= set(npz.files)
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(exits_fit.folder))
    assert [e.layer for e in fit.exits] == [1, 2] and fit.record()["exits"] == [1, 2]


def _predict(deep_model: Path, fit) -> list:
    from sentiq.core.engine import Engine
    from sentiq.core.models import load_model
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner
    from sentiq.settings import MethodConfig

    plan = plan_method(MethodConfig(method="probe", fit=fit.path))
    return make_runner(Engine(load_model(str(deep_model), "cpu", "float32")), replace(plan, fit=fit)).predict(TEXTS)


def test_thresholds_of_one_give_exactly_the_last_layers_probe(deep_model: Path, exits_fit) -> None:
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(exits_fit.folder))
    never = replace(fit, exits=tuple(replace(e, threshold=1.0) for e in fit.exits))
    got, last = _predict(deep_model, never), _predict(deep_model, replace(fit, exits=()))
    assert [p.exit for p in got] == [4] * len(TEXTS) and [p.exit for p in last] == [None] * len(TEXTS)
    assert [p.label for p in got] == [p.label for p in last]
    assert [p.scores for p in got] == [pytest.approx(p.scores, rel=1e-12) for p in last]


def test_a_threshold_of_zero_gives_exactly_the_probe_at_that_layer(deep_model: Path, exits_fit, deep_engine) -> None:
    """Every text leaves at exit 2: the predictions are that exit's probe on the state a model cut to two
    layers gives (what a fit with --layer 2 reads; its probe is the same regression of the same states)."""
    from sentiq.methods.calibration import fitted_predictions
    from sentiq.methods.fit import load_fit
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner
    from sentiq.settings import MethodConfig

    fit = load_fit(str(exits_fit.folder))
    at_two = replace(fit, exits=(replace(fit.exits[0], threshold=1.0), replace(fit.exits[1], threshold=0.0)))
    got = _predict(deep_model, at_two)
    (bound,) = make_runner(deep_engine, plan_method(MethodConfig(method="probe", fit=fit.path))).bound
    states = _states(deep_engine, 2, bound.bodies(deep_engine, TEXTS), bound.prefix)
    want = fitted_predictions(fit.exits[1].probe.logprobs(states), None, ("positive", "negative"))
    assert [p.exit for p in got] == [2] * len(TEXTS) and [p.label for p in got] == [p.label for p in want]
    assert [p.scores for p in got] == [pytest.approx(p.scores, rel=1e-12) for p in want]


def test_mixed_exits_give_each_text_the_probe_of_its_exit_batched_or_not(deep_model: Path, exits_fit) -> None:
    from sentiq.core.engine import Engine
    from sentiq.core.models import load_model
    from sentiq.methods.fit import load_fit
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner
    from sentiq.settings import MethodConfig

    fit = load_fit(str(exits_fit.folder))
    each = {
        k: _predict(deep_model, replace(fit, exits=tuple(replace(e, threshold=float(e.layer != k)) for e in fit.exits)))
        for k in (1, 2)
    }
    each[4] = _predict(deep_model, replace(fit, exits=()))
    confident = [max(p.scores.values()) for p in each[1]]
    mixed = replace(
        fit, exits=(replace(fit.exits[0], threshold=float(np.median(confident))), replace(fit.exits[1], threshold=1.0))
    )
    plan = replace(plan_method(MethodConfig(method="probe", fit=fit.path)), fit=mixed)
    got = {
        rows: make_runner(Engine(load_model(str(deep_model), "cpu", "float32"), max_batch_rows=rows), plan).predict(
            TEXTS
        )
        for rows in (1, None)
    }
    assert [p.scores for p in got[1]] == [pytest.approx(p.scores, rel=1e-12) for p in got[None]]
    exits = [p.exit for p in got[None]]
    assert set(exits) == {1, 4}
    for i, p in enumerate(got[None]):
        assert p.scores == pytest.approx(each[p.exit][i].scores, rel=1e-12) and p.label == each[p.exit][i].label


def test_a_target_accuracy_is_chosen_on_the_cascades_held_out_predictions(exits_fit) -> None:
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(exits_fit.folder))
    probs = [*(e.probe.held_out for e in fit.exits), fit.probe.held_out]
    _, through = cascaded(probs, [e.threshold for e in fit.exits])
    confidence, correct = fit.held_out(probe=True)
    assert confidence.tolist() == through.max(axis=1).tolist()
    assert correct.tolist() == (through.argmax(axis=1) == fit.gold).tolist()


# -- every surface -------------------------------------------------------------------------------------


def test_classify_writes_each_texts_exit_and_says_where_they_left(deep_model: Path, exits_fit, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [f"t{i}" for i in range(len(TEXTS))], "text": TEXTS}).to_csv(source, index=False)
    out = tmp_path / "labels.csv"
    args = ["classify", "--model", str(deep_model), "--method", "probe", "--fit", str(exits_fit.folder)]
    result = runner.invoke(
        app, [*args, "--input", str(source), "--output", str(out), "--device", "cpu", "--dtype", "float32"]
    )
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert "exit" in written.columns and set(written["exit"]) <= {1, 2, 4}
    counts = written["exit"].value_counts()
    shares = " · ".join(f"{k} {100 * counts[k] / len(TEXTS):.0f}%" for k in counts.index)
    assert f"texts per exit (layer): {shares}" in " ".join(result.output.split())
    library = sentiq.load(
        str(deep_model), method="probe", fit=str(exits_fit.folder), device="cpu", dtype="float32"
    ).classify(TEXTS)
    assert [r.exit for r in library] == written["exit"].tolist()


def _evaluated(model: Path, fit, tmp_path: Path, *extra: str, method: str = "probe"):
    """`sentiq evaluate` of `method` with the fit on 20 texts it was not fitted on (float32)."""
    from tests.helpers import evaluate_args

    data = fit_data(tmp_path, n=60, name="eval.csv")
    args = evaluate_args(model, data, tmp_path, "x", 20, "--method", method, "--fit", str(fit.folder))
    return runner.invoke(app, [*args, "--dtype", "float32", *extra])


def test_evaluate_measures_the_share_per_exit(deep_model: Path, exits_fit, tmp_path: Path) -> None:
    result = _evaluated(deep_model, exits_fit, tmp_path)
    assert result.exit_code == 0, result.output
    folder = next(tmp_path.rglob("predictions.csv")).parent
    rows = pd.read_csv(folder / "predictions.csv")
    metrics = json.loads((folder / "metrics.json").read_text())
    shares = rows["exit"].value_counts(normalize=True)
    assert metrics["exit_shares"] == {str(k): pytest.approx(v) for k, v in shares.items()}
    assert metrics["mean_layers"] == pytest.approx(rows["exit"].mean())
    assert "exits (layer:%)" in result.output and "layers per text" in result.output
    config = json.loads((folder / "config.json").read_text())
    assert config["fit"]["exits"] == [1, 2]


def test_a_fit_without_exits_adds_no_exit_column(deep_model: Path, tiny_fit, tiny_model: Path) -> None:
    from sentiq.predictions import LabelSet, Prediction, prediction_fields

    result = sentiq.load(
        str(tiny_model), method="probe", fit=str(tiny_fit.folder), device="cpu", dtype="float32"
    ).classify(TEXTS[:2])
    assert [r.exit for r in result] == [None, None]
    fields = prediction_fields(Prediction("positive", 0.9), LabelSet(("positive", "negative")), "labelled")
    assert "exit" not in fields


def test_the_service_answers_each_texts_exit(deep_model: Path, exits_fit) -> None:
    pytest.importorskip("fastapi")
    from tests.test_serve import _client, _wait_ready

    make = lambda: sentiq.load(
        str(deep_model), method="probe", fit=str(exits_fit.folder), device="cpu", dtype="float32"
    )  # noqa: E731
    expected = make().classify(TEXTS)
    with _client(make) as client:
        _wait_ready(client)
        body = client.post("/v1/classify", json={"texts": TEXTS}).json()
    assert [r["exit"] for r in body["results"]] == [r.exit for r in expected]
    assert [r["scores"] for r in body["results"]] == pytest.approx([r.scores for r in expected])


# -- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"exits": [0]}, OptionError, "--exits must be layers at least 1, not 0"),
        ({"exits": [-2, 1]}, OptionError, "at least 1"),
        ({"exits": [2, 1]}, OptionError, "in increasing order, each once, not 2, 1"),
        ({"exits": [1, 1]}, OptionError, "each once"),
        ({"exits": [2], "layer": 2}, OptionError, "between 1 and 1 (layer 2 is the last exit), not 2"),
        ({"exits": [3], "layer": 2}, OptionError, "between 1 and 1"),
        ({"exits": "1,2"}, TypeError, "exits must be a list of layer numbers, not str"),
        ({"exits": 2}, TypeError, "not int"),
        ({"exits": [1.5]}, TypeError, "whole layer numbers"),
        ({"exits": [True]}, TypeError, "whole layer numbers"),
        ({"exits": [1], "max_loss": -0.1}, OptionError, "--max-loss must be at least 0 and below 1"),
        ({"exits": [1], "max_loss": 1}, OptionError, "below 1"),
        ({"exits": [1], "max_loss": float("nan")}, OptionError, "below 1"),
        ({"exits": [1], "max_loss": float("inf")}, OptionError, "below 1"),
        ({"exits": [1], "max_loss": "0.1"}, TypeError, "max_loss must be a number in [0, 1), not str"),
        ({"exits": [1], "max_loss": True}, TypeError, "not bool"),
        ({"max_loss": 0.02}, OptionError, "--max-loss is the accuracy early exits may give up: give --exits or --then"),
        ({"then": ""}, OptionError, "--then is empty"),
        ({"then": "  "}, OptionError, "--then is empty"),
        ({"then": 3}, TypeError, "then must be a string"),
    ],
)
def test_bad_exits_and_losses_are_refused_in_one_line(settings: dict, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        FitSettings(**settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_max_loss_of_zero_is_allowed() -> None:
    assert FitSettings(exits=[1], max_loss=0).max_loss == 0.0 and FitSettings(exits=(1, 3)).max_loss == 0.01


@pytest.mark.parametrize(
    ("exits", "message"),
    [
        ("4", "--exits must be layers between 1 and 3 (layer 4 is the last exit), not 4"),
        ("1,9", "between 1 and 3"),
        ("1,x", "--exits: '1,x' is not a comma-separated list of layer numbers"),
        ("", "is not a comma-separated list"),
        ("1,,2", "is not a comma-separated list"),
        ("2,1", "increasing order"),
    ],
)
def test_the_fit_command_refuses_bad_exits_before_writing_anything(
    deep_model: Path, tmp_path: Path, exits: str, message: str
) -> None:
    data = fit_data(tmp_path)
    args = ["fit", "--model", str(deep_model), "--dataset", str(data), "--n", "24", "--output-dir", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--exits", exits, "--device", "cpu", "--dtype", "float32"])
    assert result.exit_code != 0 and message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o" / "fits").exists() or not any((tmp_path / "o" / "fits").rglob("card.json"))


def test_the_fit_command_shows_the_exits(tiny_model: Path, tmp_path: Path) -> None:
    data = fit_data(tmp_path, n=12)
    args = ["fit", "--model", str(tiny_model), "--dataset", str(data), "--n", "12", "--output-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--exits", "1", "--max-loss", "0.05", "--device", "cpu", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "stages (held-out)" in text and "--max-loss 0.05" in text and "layers per text" in text
    card = json.loads(next(tmp_path.rglob("card.json")).read_text())
    assert card["early_exit"]["max_loss"] == 0.05 and [e["layer"] for e in card["exits"]] == [1, 2]


def test_compare_and_the_report_show_the_early_exit_run_beside_the_probe(
    deep_model: Path, exits_fit, tmp_path: Path
) -> None:
    """An early-exit run is its own point of the accuracy-speed chart: named by its exits in compare."""
    data = fit_data(tmp_path, n=60, name="eval.csv")
    base = [
        "evaluate",
        "--model",
        str(deep_model),
        "--method",
        "probe",
        "--fit",
        str(exits_fit.folder),
        "--dtype",
        "float32",
    ]
    base += ["--dataset", str(data), "--n", "20", "--output-dir", str(tmp_path / "runs")]
    assert runner.invoke(app, [*base, "--run-id", "exits"]).exit_code == 0
    result = runner.invoke(
        app, ["compare", "--results-dir", str(tmp_path / "runs"), "--html", str(tmp_path / "report.html")]
    )
    assert result.exit_code == 0, result.output
    assert "probe exits 1,2" in (tmp_path / "report.html").read_text()
    table = json.loads(runner.invoke(app, ["compare", "--results-dir", str(tmp_path / "runs"), "--json"]).output)
    assert [row["method"] for row in table["runs"]] == ["probe exits 1,2"]


# -- a cascade across models ---------------------------------------------------------------------------


def test_a_cascade_fit_records_the_second_model(cascade_fit, tiny_model: Path) -> None:
    card = cascade_fit.card
    assert cascade_fit.folder.name == f"classifier-n40-exits2-then-{tiny_model.name}"
    assert [e["layer"] for e in card["exits"]] == [2, 4] and all(e["threshold"] is not None for e in card["exits"])
    then = card["then"]
    assert then["label"] == tiny_model.name and then["layer"] == then["depth"] == 2
    assert len(then["weights_digest"]) == 64 and then["weights_digest"] != card["model"]["weights_digest"]
    assert 0 <= then["expected_share"] <= 1 and then["probe"]["folds"] == 5
    assert sum(e["expected_share"] for e in card["exits"]) + then["expected_share"] == pytest.approx(1.0)
    assert "mean_layers" not in card["early_exit"] and card["early_exit"]["expected_speedup"] > 0
    with np.load(cascade_fit.folder / "weights.npz", allow_pickle=False) as npz:
        assert {"then_probe_coef", "then_probe_held_out", "exit2_coef"} <= set(npz.files)


def _cascade(fit, exit_threshold: float, then_threshold: float):
    return replace(
        fit,
        exits=tuple(replace(e, threshold=exit_threshold) for e in fit.exits),
        then=replace(fit.then, threshold=then_threshold),
    )


def test_a_cascade_gives_each_text_the_probe_of_the_stage_it_left_at(
    deep_model: Path, tiny_model: Path, cascade_fit, tmp_path: Path
) -> None:
    """Everything to the second model gives that model's probe run alone on it; nothing to it gives the
    first model's; between, each text the probe of its stage."""
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(cascade_fit.folder))
    card = {**fit.card, "model": fit.then.model, "layer": fit.then.layer}
    second = _predict(tiny_model, replace(fit, card=card, probe=fit.then.probe, exits=(), then=None))
    first = _predict(deep_model, replace(fit, exits=(), then=None))
    everything = _predict(deep_model, _cascade(fit, 1.0, 1.0))
    assert {(p.exit, p.exit_model) for p in everything} == {(2, tiny_model.name)}
    assert [p.label for p in everything] == [p.label for p in second]
    assert [p.scores for p in everything] == [pytest.approx(p.scores, rel=1e-12) for p in second]
    nothing = _predict(deep_model, _cascade(fit, 1.0, 0.0))
    assert {(p.exit, p.exit_model) for p in nothing} == {(4, None)}
    assert [p.scores for p in nothing] == [pytest.approx(p.scores, rel=1e-12) for p in first]
    middle = float(np.median([max(p.scores.values()) for p in first]))
    mixed = _predict(deep_model, _cascade(fit, 1.0, middle))
    assert {p.exit_model for p in mixed} == {None, tiny_model.name}
    for i, p in enumerate(mixed):
        want = second[i] if p.exit_model else first[i]
        assert p.scores == pytest.approx(want.scores, rel=1e-12)
        assert (p.exit_model is not None) == (max(first[i].scores.values()) <= middle)


def test_a_cascade_writes_each_texts_model_and_evaluate_its_share(
    deep_model: Path, tiny_model: Path, cascade_fit, tmp_path: Path
) -> None:
    result = _evaluated(deep_model, cascade_fit, tmp_path)
    assert result.exit_code == 0, result.output
    folder = next(tmp_path.rglob("predictions.csv")).parent
    rows = pd.read_csv(folder / "predictions.csv", keep_default_na=False)
    assert {"exit", "exit_model"} <= set(rows.columns) and set(rows["exit_model"]) <= {"", tiny_model.name}
    assert all(m == "" or e == 2 for e, m in zip(rows["exit"], rows["exit_model"]))  # the second model's last layer
    metrics = json.loads((folder / "metrics.json").read_text())
    names = [f"{m}:{e}" if m else str(e) for e, m in zip(rows["exit"], rows["exit_model"])]
    assert metrics["exit_shares"] == {
        k: pytest.approx(v) for k, v in pd.Series(names).value_counts(normalize=True).items()
    }
    assert metrics["mean_layers"] is None
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["fit"]["then"] == tiny_model.name and config["method_title"] == f"probe exits 2 then {tiny_model.name}"
    )


def test_a_cascade_whose_second_model_is_the_first_is_refused_before_anything_is_written(
    deep_model: Path, tmp_path: Path
) -> None:
    import shutil

    data = fit_data(tmp_path)
    copy = tmp_path / "copy-of-deep"
    shutil.copytree(deep_model, copy)  # other path, same weights
    for then in (str(deep_model), str(copy)):
        args = [
            "fit",
            "--model",
            str(deep_model),
            "--dataset",
            str(data),
            "--n",
            "24",
            "--output-dir",
            str(tmp_path / "o"),
        ]
        result = runner.invoke(app, [*args, "--then", then, "--device", "cpu", "--dtype", "float32"])
        assert result.exit_code == 1 and f"--then {then} is the fit's own model (deep-qwen20)" in " ".join(
            result.output.split()
        )
        assert not (tmp_path / "o").exists()
    result = runner.invoke(app, [*args, "--then", str(tmp_path / "nowhere"), "--device", "cpu"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) <= 2 and not (tmp_path / "o").exists()


def test_a_cascade_whose_second_model_changed_is_refused(
    deep_model: Path, tiny_model: Path, cascade_fit, tmp_path: Path
) -> None:
    import shutil

    from sentiq.methods.fit import load_fit

    moved = tmp_path / "second"
    shutil.copytree(tiny_model, moved)
    fit = load_fit(str(cascade_fit.folder))
    other = replace(
        fit, then=replace(fit.then, model={**fit.then.model, "source": str(moved), "weights_digest": "0" * 64})
    )
    with pytest.raises(
        OptionError, match=f"the fit's second model {tiny_model.name} .* is not the one it was fitted on"
    ):
        _predict(deep_model, other)


def test_a_target_accuracy_reads_the_cascades_held_out_predictions(cascade_fit) -> None:
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(cascade_fit.folder))
    stages = [*(e.probe.held_out for e in fit.exits), fit.probe.held_out, fit.then.probe.held_out]
    _, through = cascaded(stages, [*(e.threshold for e in fit.exits), fit.then.threshold])
    confidence, correct = fit.held_out(probe=True)
    assert confidence.tolist() == through.max(axis=1).tolist()
    assert correct.tolist() == (through.argmax(axis=1) == fit.gold).tolist()


# -- choosing the thresholds again when the fit is used --------------------------------------------------


def test_the_thresholds_chosen_again_for_the_same_loss_are_the_cards(exits_fit, cascade_fit) -> None:
    from sentiq.methods.fit import load_fit

    for made in (exits_fit, cascade_fit):
        fit = load_fit(str(made.folder))
        again = fit.rechosen(0.01)
        assert [e.threshold for e in again.exits] == [e.threshold for e in fit.exits]
        assert (again.then.threshold if again.then else None) == (fit.then.threshold if fit.then else None)


def test_a_larger_loss_lets_more_texts_out_early(deep_model: Path, exits_fit) -> None:
    from sentiq.methods.fit import load_fit

    fit = load_fit(str(exits_fit.folder))
    strict, loose = fit.rechosen(0.0), fit.rechosen(0.9)
    confidence = np.array([max(p.scores.values()) for p in _predict(deep_model, replace(fit, exits=fit.exits[:1]))])
    assert loose.exits[0].threshold <= strict.exits[0].threshold
    assert (confidence > loose.exits[0].threshold).sum() >= (confidence > strict.exits[0].threshold).sum()


def test_max_loss_when_classifying_chooses_the_thresholds_again(deep_model: Path, exits_fit, tmp_path: Path) -> None:
    result = _evaluated(deep_model, exits_fit, tmp_path, "--max-loss", "0.5", method="loglik,probe")
    assert result.exit_code == 0, result.output
    configs = [json.loads(p.read_text()) for p in tmp_path.rglob("config.json")]
    probe = next(c for c in configs if c["method"] == "probe")
    loglik = next(c for c in configs if c["method"] == "loglik")
    assert probe["method_settings"]["max_loss"] == 0.5 and "max_loss" not in loglik["method_settings"]
    from sentiq.methods.fit import load_fit

    assert probe["fit"]["thresholds"] == [e.threshold for e in load_fit(str(exits_fit.folder)).rechosen(0.5).exits]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_loss": -0.01}, OptionError, "--max-loss must be at least 0 and below 1"),
        ({"max_loss": 1.0}, OptionError, "below 1"),
        ({"max_loss": float("nan")}, OptionError, "below 1"),
        ({"max_loss": "0.1"}, TypeError, "max_loss must be a number"),
        ({"max_loss": True}, TypeError, "not bool"),
        ({"max_loss": 0.1, "method": "loglik", "fit": None}, OptionError, "--max-loss chooses again the thresholds"),
    ],
)
def test_bad_max_loss_when_classifying_is_refused(options: dict, error: type, message: str) -> None:
    from sentiq.settings import MethodConfig

    with pytest.raises(error) as caught:
        MethodConfig(**{"method": "probe", "fit": "somewhere", **options})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_max_loss_with_a_fit_without_stages_is_one_line(tiny_model: Path, tiny_fit) -> None:
    with pytest.raises(OptionError, match="has no early exits and no second model: max_loss has nothing to choose"):
        sentiq.load(str(tiny_model), method="probe", fit=str(tiny_fit.folder), max_loss=0.02, device="cpu")
    result = runner.invoke(
        app,
        [
            "classify",
            "--model",
            str(tiny_model),
            "--method",
            "probe",
            "--fit",
            str(tiny_fit.folder),
            "--max-loss",
            "0.02",
            "a text",
        ],
    )
    assert result.exit_code == 1 and "--max-loss has nothing to choose" in result.output
