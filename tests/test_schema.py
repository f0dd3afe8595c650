"""One prediction, one schema: every surface's prediction fields come from predictions.prediction_fields,
so a text labelled through the library, classify_frame, an output file, a run's predictions.csv, a
backend's rows, Ray's columns and the service carries the same fields with the same values."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import sentiq
from sentiq.predictions import LABELLED_FIELDS, RUN_FIELDS, LabelSet, Prediction, prediction_fields

TEXTS = ["An absolute delight from start to end.", "A dull, lifeless mess.", "It was fine, I suppose."]
THREE = ("negative", "neutral", "positive")
PACKAGE = Path(sentiq.__file__).parent


@pytest.fixture(scope="module", params=["binary", "three-way"])
def case(request: pytest.FixtureRequest, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A classifier of the tiny model, with the binary labels or a three-way prompt, and its prompt spec."""
    prompt = "classifier"
    if request.param == "three-way":
        path = tmp_path_factory.mktemp("prompt") / "three.toml"
        words = "".join(f'{label} = "{label}"\n' for label in THREE)
        path.write_text(f'user = "Review: {{text}}"\n[labels]\n{words}', encoding="utf-8")
        prompt = str(path)
    clf = sentiq.load(str(tiny_model), method="loglik", prompt=prompt, device="cpu", dtype="float32")
    return clf, prompt


def _prediction_part(fields: set[str], label_set: LabelSet) -> set[str]:
    """The fields of a surface that render the prediction (not the text's id, text or timing)."""
    every = {"label", "scores", "answer", "tokens", "truncated", "p_positive"}
    every |= set(label_set.probability_fields) | set(label_set.raw_fields)
    return fields & every


def test_every_surface_renders_the_same_prediction_through_the_schema(case, tmp_path: Path) -> None:
    clf, prompt = case
    label_set = LabelSet(clf.labels)
    results = clf.classify(TEXTS)
    surfaces: dict[str, list[dict]] = {
        "result": [vars(r) for r in results],
        "service": clf.fields(TEXTS, "service"),
        "labelled": clf.fields(TEXTS, "labelled"),
        "frame": clf.classify_frame(pd.DataFrame({"text": TEXTS})).drop(columns="text").to_dict("records"),
    }
    with sentiq.classify_stream([(str(i), t) for i, t in enumerate(TEXTS)], classifier=clf) as stream:
        surfaces["output"] = [
            {k: v for k, v in row.items() if k not in ("id", "text")} for s in stream for row in s.rows
        ]
    expected = {
        "result": label_set.surface_fields("result"),
        "service": label_set.surface_fields("service"),
        "labelled": label_set.surface_fields("labelled"),
        "frame": label_set.surface_fields("output", answers=False),
        "output": label_set.surface_fields("output", answers=False),
    }
    for surface, rows in surfaces.items():
        assert len(rows) == len(TEXTS)
        assert _prediction_part(set(rows[0]), label_set) == set(expected[surface]), surface
        assert [r["label"] for r in rows] == [r.label for r in results], surface
    for field in label_set.probability_fields:  # the same probability wherever it is written
        name = field[2:]
        want = [r.scores[name] for r in results]
        for surface in ("labelled", "frame", "output"):
            assert [r[field] for r in surfaces[surface]] == pytest.approx(want, abs=1e-5), (surface, field)
    assert [r["scores"] for r in surfaces["service"]] == [r.scores for r in results]


def test_a_run_and_the_ray_columns_hold_the_schemas_fields(case, tmp_path: Path) -> None:
    clf, prompt = case
    label_set = LabelSet(clf.labels)
    data = tmp_path / "data.csv"
    gold = clf.labels[0], clf.labels[-1]
    pd.DataFrame({"text": TEXTS[:2], "label": list(gold)}).to_csv(data, index=False)
    evaluation = sentiq.evaluate(clf, "loglik", prompt=prompt, dataset=str(data), n=2, sample="stratified")
    assert tuple(evaluation.runs[0].predictions.columns) == label_set.run_fields()
    pytest.importorskip("ray")
    from sentiq.backends.ray import LabelBatch
    from sentiq.methods.plan import plan_method
    from sentiq.settings import ModelSettings

    plan = plan_method(clf.method)
    table = LabelBatch(ModelSettings(clf.source.ref, "cpu", "float32"), plan, 1)(
        pd.DataFrame({"id": ["a", "b"], "text": TEXTS[:2]})
    )
    columns = set(table.column_names) - {"id", "text", "latency_ms", "device", "dtype"}
    assert columns == set(label_set.surface_fields("labelled"))
    assert table.column("label").to_pylist() == [r.label for r in clf.classify(TEXTS[:2])]


@pytest.mark.parametrize("labels", [("positive", "negative"), THREE, ("1", "2", "3", "4", "5")])
def test_prediction_fields_follow_the_label_set(labels: tuple[str, ...]) -> None:
    label_set = LabelSet(labels)
    probs = [1 / len(labels) + (0.1 if i == 0 else -0.1 / (len(labels) - 1)) for i in range(len(labels))]
    p = Prediction.of(labels[0], probs, labels, raw=probs[::-1], tokens=7, truncated=True)
    for surface in ("result", "output", "labelled", "service"):
        fields = prediction_fields(p, label_set, surface)
        assert tuple(fields) == label_set.surface_fields(surface)
    output = prediction_fields(p, label_set, "output")
    assert all(round(v, 6) == v for k, v in output.items() if k.startswith("p_"))  # as precise as a file holds
    if label_set.binary:
        assert output["p_positive"] == round(probs[0], 6) and "p_positive_raw" in label_set.raw_fields
        assert prediction_fields(p, label_set, "result")["p_positive"] == probs[0]
    else:
        assert prediction_fields(p, label_set, "result")["p_positive"] is None  # a Result's is the binary set's
        assert set(output) == {"label", *(f"p_{label}" for label in labels), "answer"}
    assert LABELLED_FIELDS[2:-1] == LabelSet(("positive", "negative")).surface_fields("labelled")
    assert LabelSet(("positive", "negative")).run_fields() == RUN_FIELDS


def test_the_binary_set_is_told_apart_in_one_place() -> None:
    """`== LABELS` (or `!=`) stands once in the package: predictions.is_binary."""
    found = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for path in PACKAGE.rglob("*.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"[!=]= *LABELS\b", line)
    ]
    assert found == ["predictions.py:27"] or (len(found) == 1 and found[0].startswith("predictions.py")), found


def test_a_surface_that_does_not_exist_is_refused(case) -> None:
    clf, _ = case
    with pytest.raises(sentiq.OptionError, match="unknown surface 'json': choose one of result, output"):
        clf.fields(TEXTS, "json")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="texts must be a string or an iterable of strings, not int"):
        clf.fields(5)  # type: ignore[arg-type]
    assert clf.fields([]) == [] and clf.fields("") == [
        {"label": "invalid", **dict.fromkeys(LabelSet(clf.labels).probability_fields)}
    ]
