"""`sentiq suggest` and `fit --add`: the texts a fit would learn most from, written to label, and the
labels fitted on again; and every pool, count and file a careless or hostile caller can give."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIT_TEXTS, fit_data
from typer.testing import CliRunner

import sentiq
from sentiq.cli import app
from sentiq.methods.suggesting import pick

runner = CliRunner()


def _pool(folder: Path, start: int = 100, n: int = 20, own: int = 0, name: str = "pool.csv") -> Path:
    """New texts of the fit's two kinds, `own` of the fit's own texts among them, one repeated, one empty."""
    good, bad = FIT_TEXTS
    fitted = pd.read_csv(fit_data(folder, name="fitted-copy.csv"))["text"].tolist()[:own]
    texts = [f"{good if i % 2 else bad} {i}" for i in range(start, start + n)] + fitted
    texts += [texts[0], "   "]
    path = folder / name
    pd.DataFrame({"id": [f"p{i}" for i in range(len(texts))], "text": texts}).to_csv(path, index=False)
    return path


def _suggest(fit: Path, pool: Path, out: Path, *extra: str):
    return runner.invoke(app, ["suggest", "--fit", str(fit), "--input", str(pool), "--output", str(out), *extra])


def test_pick_takes_the_least_confident_and_skips_near_duplicates() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [0.51, 0.49], [0.7, 0.3]])
    states = np.array([[1.0, 0], [0, 1.0], [1.0, 1.0], [0, 1.001], [-1.0, 0]])
    assert pick(probs, states, 3) == [3, 2, 4]  # 1 reads as 3 (cosine ~1): skipped
    assert pick(probs, states, 10) == [3, 2, 4, 0]  # fewer than asked when the rest are near-duplicates
    assert pick(probs, states, 0) == []


def test_suggest_writes_the_texts_to_label_and_fit_takes_them_back(tiny_fit, tmp_path: Path) -> None:
    pool = _pool(tmp_path, own=5)
    out = tmp_path / "next.csv"
    result = _suggest(tiny_fit.folder, pool, out, "--n", "6")
    assert result.exit_code == 0, result.output
    assert "saved 6 of 20 candidate texts (7 left out: the fit's own, empty or repeated)" in result.stderr
    rows = pd.read_csv(out, keep_default_na=False)
    assert list(rows.columns) == ["id", "text", "guess", "confidence", "label"]
    assert len(rows) == 6 and set(rows["label"]) == {""} and set(rows["guess"]) <= {"positive", "negative"}
    fitted = set(pd.read_csv(fit_data(tmp_path, name="again.csv"))["text"])
    assert not set(rows["text"]) & fitted and rows["text"].is_unique
    assert list(rows["confidence"]) == sorted(rows["confidence"])  # least confident first
    assert ((rows["confidence"] >= 0.5) & (rows["confidence"] <= 1)).all()

    # an unfilled file is refused in one line; filled, it is fitted on with the sample
    args = ["fit", "--model", str(tiny_fit.card["model"]["source"]), "--dataset", str(fit_data(tmp_path)), "--n", "24"]
    args += ["--output-dir", str(tmp_path / "res")]
    unfilled = runner.invoke(app, [*args, "--add", str(out)])
    assert unfilled.exit_code != 0 and "6 rows with no label (the first at row 1)" in unfilled.stderr
    assert not (tmp_path / "res").exists()
    rows["label"] = ["positive" if FIT_TEXTS[0] in t else "negative" for t in rows["text"]]
    rows.to_csv(out, index=False)
    again = runner.invoke(app, [*args, "--add", str(out), "--json"])
    assert again.exit_code == 0, again.output
    card = json.loads(again.stdout)
    assert card["n"] == 30 and card["added"] == {str(out): 6}


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda d: fit_data(d, name="own.csv"), [], "every text is one the fit was fitted on"),
        (lambda d: _pool(d, n=3), ["--n", "4"], "--n 4: the pool has 3 texts the fit has not seen; ask for at most 3"),
        (lambda d: _empty(d), [], "holds no texts"),
        (lambda d: d / "missing.csv", [], "file not found"),
    ],
)
def test_a_pool_it_cannot_suggest_from_is_one_line_and_writes_nothing(
    tiny_fit, tmp_path: Path, make, extra, message
) -> None:
    out = tmp_path / "next.csv"
    result = _suggest(tiny_fit.folder, make(tmp_path), out, *extra)
    assert result.exit_code != 0 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def _empty(folder: Path) -> Path:
    path = folder / "empty.csv"
    path.write_text("id,text\n")
    return path


def test_outputs_it_will_not_write(tiny_fit, tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    taken = tmp_path / "taken.csv"
    taken.write_text("precious\n")
    result = _suggest(tiny_fit.folder, pool, taken)
    assert result.exit_code != 0 and "already exists" in result.stderr and taken.read_text() == "precious\n"
    assert _suggest(tiny_fit.folder, pool, taken, "--overwrite", "--n", "2").exit_code == 0
    same = _suggest(tiny_fit.folder, pool, pool)
    assert same.exit_code != 0 and "would overwrite the input" in same.stderr
    link = tmp_path / "link.csv"
    link.symlink_to(pool)
    assert "would overwrite the input" in _suggest(tiny_fit.folder, pool, link, "--overwrite").stderr
    parquet = _suggest(tiny_fit.folder, pool, tmp_path / "next.parquet")
    assert parquet.exit_code != 0 and "written as a .csv" in parquet.stderr
    assert _suggest(tiny_fit.folder, pool, tmp_path / "n.csv", "--n", "0").exit_code == 2
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert "is a folder" in _suggest(tiny_fit.folder, pool, folder, "--overwrite").stderr
    behind = _suggest(tiny_fit.folder, pool, taken / "next.csv")
    assert behind.exit_code != 0 and "is a file, so the folder cannot be made" in behind.stderr
    deep = tmp_path / "new" / "dir" / "next.csv"
    assert _suggest(tiny_fit.folder, pool, deep, "--n", "2").exit_code == 0 and len(pd.read_csv(deep)) == 2
    missing = _suggest(tmp_path / "no-fit", pool, tmp_path / "n.csv")
    assert missing.exit_code != 0 and "no such fit folder" in missing.stderr


def test_the_library_names_wrong_kinds(tiny_fit, tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    with pytest.raises(TypeError, match="fit must be a path, not int"):
        sentiq.suggest(5, pool)
    with pytest.raises(TypeError, match="output must be a path, not list"):
        sentiq.suggest(tiny_fit.folder, pool, output=["x.csv"])
    for n in (0, -1):
        with pytest.raises(sentiq.OptionError, match=f"n must be at least 1, not {n}"):
            sentiq.suggest(tiny_fit.folder, pool, n=n, output=tmp_path / "x.csv")
    for n in (True, 2.5, "3"):
        with pytest.raises(TypeError, match=f"n must be a whole number of texts, not {type(n).__name__}"):
            sentiq.suggest(tiny_fit.folder, pool, n=n, output=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    got = sentiq.suggest(tiny_fit.folder, pool, n=3, output=tmp_path / "x.csv", device="cpu", dtype="float32")
    assert got.picked == 3 and got.candidates == 20 and got.output == tmp_path / "x.csv"


def test_add_refuses_labels_outside_the_set_and_wrong_kinds(tiny_fit, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["a new text"], "label": ["neutral"]}).to_csv(bad, index=False)
    args = ["fit", "--model", str(tiny_fit.card["model"]["source"]), "--dataset", str(fit_data(tmp_path)), "--n", "24"]
    result = runner.invoke(app, [*args, "--output-dir", str(tmp_path / "res"), "--add", str(bad)])
    assert result.exit_code != 0 and "neutral" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(TypeError, match="add must be a path or a list of paths, not int"):
        sentiq.fit(str(tiny_fit.card["model"]["source"]), dataset=str(fit_data(tmp_path)), add=5)
