"""Loaders, explicit label maps (the 0 = positive trap included) and balanced seeded sampling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sentiq.errors import DataError
from sentiq.io import datasets as data
from sentiq.io.datasets import load_labelled, load_pool, load_tuning, parse_label_map
from sentiq.io.samples import balanced_sample
from sentiq.settings import DataSpec


def test_embedded_sample_is_balanced_and_disjoint_from_pool() -> None:
    sample, pool = load_labelled(DataSpec()), load_pool()
    assert len(sample) == 1000 and sample["label"].value_counts().to_dict() == {"positive": 500, "negative": 500}
    assert len(pool) == 400 and pool["label"].value_counts().to_dict() == {"positive": 200, "negative": 200}
    assert not set(sample["text"]) & set(pool["text"])
    assert sample["id"].str.startswith("test/").all() and pool["id"].str.startswith("train/").all()


def test_tuning_reviews_are_balanced_and_disjoint_from_evaluation_and_pool() -> None:
    tuning = load_tuning()
    assert len(tuning) == 1000 and tuning["label"].value_counts().to_dict() == {"positive": 500, "negative": 500}
    assert tuning["id"].str.startswith("train/").all()
    assert not set(tuning["text"]) & (set(load_labelled(DataSpec())["text"]) | set(load_pool()["text"]))


def test_embedded_labels_follow_the_source_folders() -> None:
    sample = load_labelled(DataSpec())
    folder = sample["id"].str.split("/").str[1].map({"pos": "positive", "neg": "negative"})
    assert (folder == sample["label"]).all()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".tsv"])
def test_local_files_load_with_labels(tmp_path: Path, suffix: str) -> None:
    df = pd.DataFrame({"id": ["a", "b", "c"], "review": ["good", "bad", "fine"], "y": ["POS", "neg", "Positive"]})
    path = tmp_path / f"d{suffix}"
    {
        ".csv": lambda: df.to_csv(path, index=False),
        ".tsv": lambda: df.to_csv(path, index=False, sep="\t"),
        ".jsonl": lambda: df.to_json(path, orient="records", lines=True),
        ".parquet": lambda: df.to_parquet(path),
    }[suffix]()
    got = load_labelled(DataSpec(str(path), text_column="review", label_column="y"))
    assert list(got["label"]) == ["positive", "negative", "positive"]
    assert list(got["text"]) == ["good", "bad", "fine"]


def test_numeric_labels_default_to_one_positive(labelled_csv: Path) -> None:
    got = load_labelled(DataSpec(str(labelled_csv)))
    assert got.set_index("id").loc["r1", "label"] == "positive"
    assert got.set_index("id").loc["r0", "label"] == "negative"


def test_explicit_label_map_reverses_encoding(labelled_csv: Path) -> None:
    got = load_labelled(DataSpec(str(labelled_csv), label_map="0=positive,1=negative"))
    assert got.set_index("id").loc["r1", "label"] == "negative"


def test_unknown_label_values_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["1", "maybe", "2"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"'2', 'maybe'"):
        load_labelled(DataSpec(str(path)))


def test_missing_column_lists_the_columns(labelled_csv: Path) -> None:
    with pytest.raises(DataError, match=r"no column 'review'; columns are: id, text, label"):
        load_labelled(DataSpec(str(labelled_csv), text_column="review"))


@pytest.mark.parametrize(
    "content,message",
    [(None, "file not found"), (b"", "is empty"), (b"\xff\xfe\x00garbage\x00", "not a readable parquet")],
)
def test_bad_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "d.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_labelled(DataSpec(str(path)))


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"id": ["x", "x"], "text": ["a", "b"], "label": [1, 0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="duplicate ids x"):
        load_labelled(DataSpec(str(path)))


def test_bad_label_map() -> None:
    with pytest.raises(DataError, match="bad --label-map"):
        parse_label_map("1=good")


def _fake_hub(monkeypatch: pytest.MonkeyPatch, rows: dict) -> None:
    import datasets

    monkeypatch.setattr(data, "require_hub", lambda *a, **k: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_dict(rows))


def test_ajaykarthick_zero_means_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, {"review": ["loved it", "hated it"], "label": [0, 1]})
    got = load_labelled(DataSpec("ajaykarthick/imdb-movie-reviews"))
    assert list(got["label"]) == ["positive", "negative"]


def test_stanford_imdb_one_means_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub(monkeypatch, {"text": ["loved it", "hated it"], "label": [1, 0]})
    got = load_labelled(DataSpec("stanfordnlp/imdb"))
    assert list(got["label"]) == ["positive", "negative"]


def test_hub_dataset_offline_fails_fast_with_fix() -> None:
    with pytest.raises(DataError, match="HF_HUB_OFFLINE is set: download it"):
        load_labelled(DataSpec("someone/some-reviews"))


def test_balanced_sample_is_seeded_and_balanced() -> None:
    df = load_labelled(DataSpec())
    a, b, c = balanced_sample(df, 50, 1), balanced_sample(df, 50, 1), balanced_sample(df, 50, 2)
    assert a["label"].value_counts().to_dict() == {"positive": 25, "negative": 25}
    assert list(a["id"]) == list(b["id"])
    assert list(a["id"]) != list(c["id"])
    assert balanced_sample(df, 7, 0)["label"].value_counts().to_dict() == {"positive": 4, "negative": 3}


def test_n_above_available_says_how_many(labelled_csv: Path) -> None:
    df = load_labelled(DataSpec(str(labelled_csv)))
    with pytest.raises(DataError, match=r"has 6 positive and 6 negative \(use --n 12 or less\)"):
        balanced_sample(df, 20, 0)


def test_a_labelled_table_with_a_row_longer_than_its_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\ngood film,1\nGreat blender, very quiet.,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.csv line 3: 3 fields where the header has 2; put a text"):
        load_labelled(DataSpec(str(path)))
