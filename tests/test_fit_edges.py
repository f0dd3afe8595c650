"""A fit at the edges of what it takes: the smallest data the docs allow, texts that are all empty, a fit
that is damaged, in the wrong place or for another label order, and a service given a bad fit."""

from __future__ import annotations

import json
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import sentiq
from sentiq.cli.app import app
from sentiq.errors import OptionError
from sentiq.methods.fitted import fit_linear
from sentiq.results import NESTED_MIN
from tests.conftest import FIT_TEXTS, fit_data

runner = CliRunner()
GOOD, BAD = FIT_TEXTS


@pytest.mark.parametrize(("per_label", "folds", "nested"), [(2, 2, False), (3, 3, True), (5, 5, True), (6, 5, True)])
def test_the_smallest_fits_fit_with_the_folds_the_data_allows_and_say_nothing_else(
    per_label: int, folds: int, nested: bool
) -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * per_label)
    x = rng.normal(size=(len(y), 6)) + 2 * y[:, None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        linear, score = fit_linear(x, y, ["positive", "negative"], seed=0, curve=per_label < 5)
    assert [str(w.message) for w in caught] == []  # scikit-learn's warnings held back
    assert (score.folds, score.nested, score.n) == (folds, nested, len(y))
    assert (score.note() is None) == nested
    assert linear.logprobs(x).shape == (len(y), 2) and np.isfinite(linear.logprobs(x)).all()
    if not nested:
        assert f"needs {NESTED_MIN} texts of each label" in score.note()


def test_fit_of_two_texts_a_label_on_the_command_line(tiny_model: Path, tmp_path: Path) -> None:
    data = fit_data(tmp_path, n=4)
    args = ["fit", "--model", str(tiny_model), "--dataset", str(data), "--n", "4", "-o", str(tmp_path)]
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Warning" not in result.output
    assert "a nested score needs 3 texts of each label" in " ".join(result.output.split())
    card = json.loads(
        (tmp_path / "fits" / tiny_model.name / "positive-negative" / "classifier-n4" / "card.json").read_text()
    )
    assert card["probe"]["nested"] is False and card["probe"]["folds"] == 2


@pytest.mark.parametrize("texts", [[None], [""] * 5, ["", "   ", "\t"]])
def test_a_probe_labels_texts_that_are_all_empty_invalid(tiny_fit, tiny_model: Path, texts: list) -> None:
    clf = sentiq.load(str(tiny_model), method="probe", fit=str(tiny_fit.folder), device="cpu")
    assert [r.label for r in clf.classify(texts)] == ["invalid"] * len(texts)
    frame = clf.classify_frame(pd.DataFrame({"text": texts}))
    assert list(frame["label"]) == ["invalid"] * len(texts) and frame["p_positive"].isna().all()


def test_the_service_answers_empty_texts_with_a_probe(tiny_fit, tiny_model: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sentiq.serve.app import create_app
    from sentiq.serve.settings import ServeSettings

    make = lambda: sentiq.load(str(tiny_model), method="probe", fit=str(tiny_fit.folder), device="cpu")  # noqa: E731
    with TestClient(create_app(make, ServeSettings())) as client:
        for _ in range(200):
            if client.get("/ready").status_code == 200:
                break
            import time

            time.sleep(0.05)
        answer = client.post("/v1/classify", json={"texts": ["", "   ", "\t"]})
    assert answer.status_code == 200, answer.text
    assert [r["label"] for r in answer.json()["results"]] == ["invalid"] * 3


def _copy(fit, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fit.folder, tmp_path / "copy"))


def test_a_fit_whose_weights_are_not_finite_is_refused_when_read(tiny_fit, tmp_path: Path) -> None:
    from sentiq.io.fits import CARD, read_fit, write_fit
    from sentiq.methods.fit import load_fit

    folder = _copy(tiny_fit, tmp_path)
    card, arrays = read_fit(folder)
    arrays["probe_coef"] = np.full_like(arrays["probe_coef"], np.nan)
    kept = {k: v for k, v in card.items() if k not in ("format", "weights_sha256", "card_sha256")}
    write_fit(folder, kept, arrays, overwrite=True)  # a card that vouches for NaN weights
    assert (folder / CARD).is_file()
    with pytest.raises(OptionError, match="probe weights that are not finite .*: fit again"):
        load_fit(str(folder))
    result = runner.invoke(app, ["classify", "x", "--method", "probe", "--fit", str(folder), "--json"])
    assert result.exit_code == 1 and "NaN" not in result.stdout


def test_labels_in_another_order_are_named_as_such(tiny_fit, tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.methods import prompts

    own = (Path(prompts.__file__).parent / "prompts" / "classifier.toml").read_text(encoding="utf-8")
    swapped = own.replace(
        'positive = "Positive"\nnegative = "Negative"', 'negative = "Negative"\npositive = "Positive"'
    )
    assert swapped != own
    reordered = tmp_path / "reordered.toml"
    swapped = swapped.replace(
        'positive = "positive"\nnegative = "negative"', 'negative = "negative"\npositive = "positive"'
    )
    reordered.write_text(swapped.replace('name = "classifier"', 'name = "reordered"'), encoding="utf-8")
    with pytest.raises(OptionError) as refused:
        sentiq.load(str(tiny_model), method="probe", fit=str(tiny_fit.folder), prompt=str(reordered), device="cpu")
    message = str(refused.value)
    assert "in the order positive, negative" in message and "lists them negative, positive" in message
    assert message.count("#") == 0


def test_a_fit_folder_behind_a_file_is_refused_before_the_model_is_read(tiny_model: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("mine", encoding="utf-8")
    with pytest.raises(OptionError, match=f"{blocker} is a file, so the fit's folder .* cannot be made"):
        sentiq.fit(str(tiny_model), dataset=str(fit_data(tmp_path)), n=24, output_dir=blocker)
    assert blocker.read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize(
    ("options", "message"),
    [({"prompt": None}, "prompt must be a string"), ({"output_dir": 5}, "output_dir must be a path, not int")],
)
def test_fit_arguments_of_the_wrong_type_name_the_argument(tiny_model: Path, options: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        sentiq.fit(str(tiny_model), **options)


def test_serve_refuses_a_bad_fit_before_it_listens(
    tiny_fit, tiny_model: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    pytest.importorskip("uvicorn")
    from sentiq.serve import serve
    from sentiq.serve.settings import ServeSettings
    from sentiq.settings import MethodConfig, ModelSettings
    from tests.conftest import build_model

    truncated = _copy(tiny_fit, tmp_path)
    (truncated / "weights.npz").write_bytes((truncated / "weights.npz").read_bytes()[:-10])
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    build_model(other, vocab_size=json.loads((tiny_model / "config.json").read_text())["vocab_size"], seed=1)
    with socket.socket() as s:  # a free port, never bound: the refusal comes first
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cases = [(tiny_model, truncated, "truncated or altered"), (other, tiny_fit.folder, "was fitted on model")]
    for model, fit, message in cases:
        with pytest.raises(OptionError, match=message):
            serve(
                ModelSettings(str(model), "cpu"), MethodConfig(method="probe", fit=str(fit)), ServeSettings(port=port)
            )
    printed = capfd.readouterr()
    assert "Started server" not in printed.err + printed.out and "startup" not in printed.err + printed.out
