"""sentiq fit and its use: fitted calibration and a probe on the tiny model's states, the fit folder's
checks, every refusal, and the fit used by classify, evaluate, the library and the service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli.app import app
from sentiq.errors import DataError, OptionError
from tests.conftest import FIT_TEXTS, fit_data

runner = CliRunner()
GOOD, BAD = FIT_TEXTS


@pytest.fixture
def fitted(tiny_fit):
    return tiny_fit


def test_a_fit_writes_a_checked_folder_with_a_card(fitted, tiny_model: Path) -> None:
    folder = fitted.folder
    assert folder.parent.parent.parent.name == "fits" and folder.parent.name == "positive-negative"
    assert folder.name == "classifier-n24" and sorted(p.name for p in folder.iterdir()) == ["card.json", "weights.npz"]
    card = json.loads((folder / "card.json").read_text())
    assert card["labels"] == ["positive", "negative"] and card["n"] == 24 and card["layer"] == card["depth"] == 2
    assert card["prompt"]["ref"] == "classifier" and "{text}" in card["prompt"]["user"]  # the content, not the name
    assert card["model"]["label"] == tiny_model.name and len(card["model"]["weights_digest"]) == 64
    assert len(card["texts_sha256"]) == 24 and card["counts"] == {"positive": 12, "negative": 12}
    assert {"torch", "transformers", "scikit-learn", "numpy", "sentiq"} <= set(card["versions"])
    for what in ("calibration", "probe"):
        low, high = card[what]["cv_accuracy_interval"]
        assert low <= card[what]["cv_accuracy"] <= high and card[what]["folds"] == 5
    assert [p["n"] for p in card["probe"]["learning_curve"]] == sorted(p["n"] for p in card["probe"]["learning_curve"])
    with np.load(folder / "weights.npz", allow_pickle=False) as npz:  # plain arrays, no pickle
        assert npz["probe_coef"].shape == (2, 32) and npz["calibration_coef"].shape == (2, 2)


def test_a_probe_on_texts_the_model_separates_scores_one(fitted) -> None:
    assert fitted.probe.accuracy == 1.0 and fitted.card["probe"]["cv_macro_recall"] == 1.0


def test_fit_round_trip_gives_the_fitted_models_own_scores(fitted, tiny_model: Path) -> None:
    """The probe loaded back scores texts exactly as the regression fitted in memory does (sklearn's own
    predict_proba on the same states)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sentiq.core.engine import Engine
    from sentiq.core.models import load_model
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner
    from sentiq.settings import MethodConfig

    texts = [f"{GOOD} {i}" if i % 2 else f"{BAD} {i}" for i in range(24)]
    y = np.array([0 if i % 2 else 1 for i in range(24)])  # positions in (positive, negative)
    clf = sentiq.load(str(tiny_model), method="probe", fit=str(fitted.folder), device="cpu", dtype="float32")
    scored = clf.classify(texts)
    engine = Engine(load_model(str(tiny_model), "cpu", "float32"))
    states = make_runner(engine, plan_method(MethodConfig(method="loglik"))).feature_batches(texts, [2])
    x = np.zeros((24, 34))
    for done in states:
        x[done.indices] = done.result
    model = make_pipeline(StandardScaler(), LogisticRegression(C=fitted.probe.C, max_iter=2000)).fit(x[:, 2:], y)
    expected = model.predict_proba(x[:, 2:])  # columns: classes 0 (positive), 1 (negative)
    got = np.array([[r.scores["positive"], r.scores["negative"]] for r in scored])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [r.label for r in scored] == ["positive" if i % 2 else "negative" for i in range(24)]
    again = sentiq.load(str(tiny_model), method="probe", fit=str(fitted.folder), device="cpu", dtype="float32")
    assert [r.scores for r in again.classify(texts)] == [r.scores for r in scored]  # loaded twice, identical


def test_fitted_calibration_keeps_the_raw_scores_beside(fitted, tiny_model: Path) -> None:
    clf = sentiq.load(str(tiny_model), calibrate="fitted", fit=str(fitted.folder), device="cpu", dtype="float32")
    frame = clf.classify_frame(pd.DataFrame({"text": [f"{GOOD} 3", f"{BAD} 4", None]}))
    assert list(frame["label"]) == ["positive", "negative", "invalid"]
    assert clf.method.title() == "loglik fitted-calibrated"


def test_a_fit_at_an_earlier_layer_runs_only_those_layers(tiny_model: Path, tmp_path: Path) -> None:
    result = sentiq.fit(
        str(tiny_model),
        dataset=str(fit_data(tmp_path)),
        n=24,
        layer=1,
        output_dir=tmp_path,
        device="cpu",
        dtype="float32",
    )
    assert result.card["layer"] == 1 and result.folder.name == "classifier-n24-layer1"
    clf = sentiq.load(str(tiny_model), method="probe", fit=str(result.folder), device="cpu", dtype="float32")
    assert [r.label for r in clf.classify([f"{GOOD} 1", f"{BAD} 2"])] == ["positive", "negative"]
    assert len(clf.engine.model.model.layers) == 2  # whole again after the early exit


# -- the command line -----------------------------------------------------------------------------------


def test_fit_command_prints_scores_and_the_way_to_use_it(tiny_model: Path, tmp_path: Path) -> None:
    data = fit_data(tmp_path)
    args = ["fit", "--model", str(tiny_model), "--dataset", str(data), "--n", "24", "-o", str(tmp_path)]
    result = runner.invoke(app, [*args, "--device", "cpu", "--name", "mine"])
    assert result.exit_code == 0, result.output
    assert "probe" in result.output and "calibration" in result.output and "learning curve" in result.output
    folder = tmp_path / "fits" / tiny_model.name / "positive-negative" / "mine"
    assert f"--method probe --fit {folder}" in result.output.replace("\n", "")
    again = runner.invoke(app, [*args, "--device", "cpu", "--name", "mine"])  # nothing overwritten
    assert again.exit_code == 1 and "already exists" in again.output
    classified = runner.invoke(
        app, ["classify", f"{GOOD} 5", "--model", str(tiny_model), "--method", "probe", "--fit", str(folder)]
    )
    assert classified.exit_code == 0 and "positive" in classified.output


def test_evaluate_with_a_fit_leaves_its_texts_out(tiny_model: Path, tmp_path: Path) -> None:
    fitted_on = fit_data(tmp_path, 24)
    made = sentiq.fit(str(tiny_model), dataset=str(fitted_on), n=24, output_dir=tmp_path, device="cpu")
    both = pd.concat([pd.read_csv(fitted_on), pd.read_csv(fit_data(tmp_path, 40, "more.csv")).iloc[24:]])
    both.to_csv(tmp_path / "both.csv", index=False)
    result = runner.invoke(
        app,
        ["evaluate", "--model", str(tiny_model), "--dataset", str(tmp_path / "both.csv"), "--method", "loglik,probe"]
        + ["--fit", str(made.folder), "--n", "16", "-o", str(tmp_path / "runs"), "--device", "cpu"],
    )  # the fit goes to the method that reads it; both are measured on one sample
    assert result.exit_code == 0, result.output
    assert "probe: left out 24 texts the fit was fitted on" in result.output
    runs = {
        p.name.rsplit("-", 1)[-1]: json.loads((p / "config.json").read_text()) for p in (tmp_path / "runs").iterdir()
    }
    assert runs["probe"]["fitted_texts_left_out"] == 24 and runs["probe"]["fit"]["name"] == "classifier-n24"
    assert "fit" not in runs["loglik"] and runs["loglik"]["sample_digest"] == runs["probe"]["sample_digest"]
    ranked = sentiq.compare(tmp_path / "runs").table  # fitted runs rank beside prompting ones
    assert list(ranked["method_name"]) == ["probe", "loglik"] and ranked["accuracy"].iloc[0] == 1.0
    with pytest.raises(OptionError, match="is read by"):  # one method that does not read it
        sentiq.evaluate(str(tiny_model), "loglik", dataset=str(fitted_on), fit=str(made.folder), device="cpu")
    only_fitted = sentiq.evaluate  # evaluating on nothing but the fit's own texts is refused
    with pytest.raises(DataError, match="every text of the dataset was fitted on by fit"):
        only_fitted(str(tiny_model), "probe", dataset=str(fitted_on), fit=str(made.folder), device="cpu")


# -- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "probe"}, "--method probe needs --fit"),
        ({"calibrate": "fitted"}, "--calibrate fitted needs --fit"),
        ({"method": "zero-shot", "calibrate": "fitted", "fit": "x"}, "--calibrate fitted applies to --method loglik"),
        ({"method": "probe", "calibrate": "batch", "fit": "x"}, "leave --calibrate out"),
        ({"fit": "x"}, "--fit is read by --method probe or --calibrate fitted"),
        ({"method": "probe", "fit": "x", "prompt": "classifier,three-way"}, "a fit reads one prompt"),
        ({"method": "probe", "fit": "x", "tail": 40}, "leave --tail out"),
    ],
)
def test_fit_options_that_do_not_go_together_are_refused(options: dict, message: str) -> None:
    from sentiq.settings import MethodConfig

    with pytest.raises(OptionError, match=message):
        MethodConfig(**options)


def test_a_fit_needs_two_labels_and_two_texts_of_each(tiny_model: Path, tmp_path: Path) -> None:
    one = pd.DataFrame({"text": [f"{GOOD} {i}" for i in range(6)], "label": ["positive"] * 6})
    one.to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataError, match="it has no negative text: use sample stratified"):
        sentiq.fit(str(tiny_model), dataset=str(tmp_path / "one.csv"), n=6, output_dir=tmp_path)
    with pytest.raises(DataError, match="every fitting text is labelled positive: a fit needs texts of at least two"):
        sentiq.fit(str(tiny_model), dataset=str(tmp_path / "one.csv"), n=6, sample="stratified", output_dir=tmp_path)
    few = pd.DataFrame({"text": [f"{GOOD} {i}" for i in range(5)] + [BAD], "label": ["positive"] * 5 + ["negative"]})
    few.to_csv(tmp_path / "few.csv", index=False)
    with pytest.raises(DataError, match="label 'negative' has 1 fitting text"):
        sentiq.fit(str(tiny_model), dataset=str(tmp_path / "few.csv"), n=6, sample="stratified", output_dir=tmp_path)
    assert not (tmp_path / "fits").exists()  # nothing written


def test_labels_not_in_the_prompts_set_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    odd = pd.DataFrame({"text": [f"{GOOD} {i}" for i in range(6)], "label": ["positive", "neutral"] * 3})
    odd.to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(DataError, match="neutral"):
        sentiq.fit(str(tiny_model), dataset=str(tmp_path / "odd.csv"), n=6, output_dir=tmp_path)


def test_a_layer_deeper_than_the_model_is_refused_before_anything_is_written(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="layer must be between 1 and 2"):
        sentiq.fit(str(tiny_model), dataset=str(fit_data(tmp_path)), n=24, layer=3, output_dir=tmp_path, device="cpu")
    with pytest.raises(OptionError, match="layer must be at least 1"):
        sentiq.fit(str(tiny_model), layer=0)
    with pytest.raises(TypeError, match="layer must be an int"):
        sentiq.fit(str(tiny_model), layer="2")
    with pytest.raises(OptionError, match="unknown fit option 'layers'. Did you mean 'layer'"):
        sentiq.fit(str(tiny_model), layers=2)
    assert not (tmp_path / "fits").exists()


def test_a_fit_for_another_prompt_or_label_order_is_refused(fitted, tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="was fitted with prompt 'classifier'.*give prompt classifier"):
        sentiq.load(str(tiny_model), method="probe", fit=str(fitted.folder), prompt="one-word")
    swapped = tmp_path / "swapped.toml"
    swapped.write_text(
        'user = "Review: {text}"\n[labels]\nnegative = "negative"\npositive = "positive"\n', encoding="utf-8"
    )
    with pytest.raises(OptionError, match="was fitted with prompt"):
        sentiq.load(str(tiny_model), method="probe", fit=str(fitted.folder), prompt=str(swapped))


def test_a_fit_for_another_model_is_refused(fitted, tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from tests.conftest import build_model

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    build_model(other, vocab_size=json.loads((tiny_model / "config.json").read_text())["vocab_size"], seed=1)
    with pytest.raises(OptionError, match="was fitted on model .* not other-model"):
        sentiq.load(str(other), method="probe", fit=str(fitted.folder), device="cpu")


def _copy(fitted, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(fitted.folder, tmp_path / "copy"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "weights.npz").write_bytes((f / "weights.npz").read_bytes()[:-10]), "truncated or altered"),
        (lambda f: (f / "card.json").write_text((f / "card.json").read_text()[:-20]), "not readable JSON"),
        (
            lambda f: (f / "card.json").write_text((f / "card.json").read_text().replace('"layer": 2', '"layer": 1')),
            "altered after it was written",
        ),
        (lambda f: (f / "weights.npz").unlink(), "is not a fit"),
        (lambda f: (f / "card.json").write_text('["a list"]'), "not a sentiq fit's card"),
    ],
)
def test_a_truncated_or_altered_fit_is_refused(fitted, tmp_path: Path, damage, message: str) -> None:
    from sentiq.methods.fit import load_fit

    folder = _copy(fitted, tmp_path)
    damage(folder)
    with pytest.raises(OptionError, match=message):
        load_fit(str(folder))


def test_a_folder_that_is_not_a_fit_is_refused_and_never_overwritten(tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.methods.fit import load_fit

    with pytest.raises(OptionError, match="no such fit folder"):
        load_fit(str(tmp_path / "nowhere"))
    with pytest.raises(OptionError, match="is not a fit"):
        load_fit(str(tmp_path))
    target = tmp_path / "fits" / tiny_model.name / "positive-negative" / "mine"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="is not a fit .* overwrite replaces only a fit"):
        sentiq.fit(
            str(tiny_model), dataset=str(fit_data(tmp_path)), n=24, name="mine", output_dir=tmp_path, overwrite=True
        )
    assert (target / "notes.txt").read_text() == "mine"


def test_tuned_beside_a_fit_is_refused(fitted, tiny_model: Path) -> None:
    with pytest.raises(OptionError, match="tuned applies a search's prompt and calibration"):
        sentiq.load(str(tiny_model), method="probe", fit=str(fitted.folder), tuned=True)


def test_fit_paths_of_wrong_types_are_type_errors() -> None:
    from sentiq.settings import MethodConfig

    with pytest.raises(TypeError, match="fit must be a path"):
        MethodConfig(method="probe", fit=3)  # type: ignore[arg-type]
    assert MethodConfig(method="probe", fit=Path("a/b")).fit == "a/b"


def test_all_methods_are_the_prompting_ones_and_a_fit_other_than_its_cut_is_said(
    fitted, caplog: pytest.LogCaptureFixture
) -> None:
    from sentiq.choices import method_names
    from sentiq.methods.plan import plan_method
    from sentiq.settings import MethodConfig

    assert "probe" not in method_names(["all"]) and method_names(["probe"]) == ["probe"]
    plan_method(MethodConfig(method="probe", fit=str(fitted.folder), max_tokens=512))
    assert "fitted on texts cut at 4096 tokens and this run cuts them at 512" in caplog.text


def test_a_fit_name_stays_one_folder_inside_fits(tiny_model: Path, tmp_path: Path) -> None:
    made = sentiq.fit(
        str(tiny_model), dataset=str(fit_data(tmp_path)), n=24, name="../../é/x", output_dir=tmp_path, device="cpu"
    )
    assert made.folder.parent == tmp_path / "fits" / tiny_model.name / "positive-negative"
    assert made.folder.name == "x"  # separators, ".." and non-ASCII letters gone
    with pytest.raises(sentiq.RunError, match="name '/..' has no usable characters"):
        sentiq.fit(str(tiny_model), dataset=str(fit_data(tmp_path)), n=24, name="/..", output_dir=tmp_path)
    with pytest.raises(OptionError, match="name is empty"):
        sentiq.fit(str(tiny_model), name=" ")
    with pytest.raises(TypeError, match="name must be a string"):
        sentiq.fit(str(tiny_model), name=3)
