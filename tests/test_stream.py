"""classify over inputs larger than memory: chunked readers, appending writers, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentiq.cli import app
from sentiq.errors import DataError
from sentiq.io.sinks import Sink
from sentiq.io.sources import in_memory, open_source

runner = CliRunner()
COLUMNS = ["id", "stars", "label", "p_positive", "answer"]


def _frame(n: int = 7) -> pd.DataFrame:
    texts = [f"review {i}, with a comma" if i % 3 else f'review {i} "quoted"\nover two lines' for i in range(n)]
    return pd.DataFrame({"review": texts, "stars": [i % 5 + 1 for i in range(n)], "extra": ["x"] * n})


def _write(frame: pd.DataFrame, path: Path) -> Path:
    kind = path.suffix
    if kind == ".parquet":
        frame.to_parquet(path, index=False)
    elif kind in (".csv", ".tsv"):
        frame.to_csv(path, index=False, sep="\t" if kind == ".tsv" else ",")
    else:
        frame.to_json(path, orient="records", lines=kind == ".jsonl")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_every_format_reads_in_chunks_with_ids_and_kept_columns(tmp_path: Path, suffix: str) -> None:
    path = _write(_frame(), tmp_path / f"in{suffix}")
    source = open_source(path, "review", ["stars"])
    assert source.total == (7 if suffix != ".json" else None)  # a JSON array has no cheap count
    chunks = list(source.chunks(3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    whole = pd.concat(chunks)
    assert list(whole.columns) == ["id", "text", "stars"]
    assert list(whole["id"]) == [str(i) for i in range(7)]  # row numbers when there is no id column
    assert list(whole["text"]) == list(_frame()["review"])
    assert [int(s) for s in whole["stars"]] == list(_frame()["stars"])


def test_a_folder_is_read_file_by_file_with_ids_unique_across_files(tmp_path: Path) -> None:
    _write(_frame(4), tmp_path / "a.csv")
    _write(_frame(3), tmp_path / "b.parquet")
    (tmp_path / "notes.md").write_text("not data")
    source = open_source(tmp_path, "review", ())
    whole = pd.concat(source.chunks(2))
    assert source.total == 7 and whole["id"].is_unique
    assert list(whole["id"]) == [
        "a.csv:0",
        "a.csv:1",
        "a.csv:2",
        "a.csv:3",
        "b.parquet:0",
        "b.parquet:1",
        "b.parquet:2",
    ]


def test_an_id_column_is_kept_as_the_id(tmp_path: Path) -> None:
    frame = _frame(3).assign(id=["x", "y", "z"])
    assert list(pd.concat(open_source(_write(frame, tmp_path / "in.csv"), "review").chunks(10))["id"]) == [
        "x",
        "y",
        "z",
    ]


@pytest.mark.parametrize(
    "keep,fragment", [(["nope"], "no column 'nope' to keep"), ([], "no column 'text'; columns are: review, stars")]
)
def test_missing_columns_are_named_before_anything_loads(tmp_path: Path, keep: list[str], fragment: str) -> None:
    path = _write(_frame(), tmp_path / "in.parquet")
    with pytest.raises(DataError, match=fragment):
        open_source(path, "review" if keep else None, keep)


def test_texts_in_memory_keep_only_id_and_text() -> None:
    with pytest.raises(DataError, match="only id and text"):
        in_memory([("0", "good")], ["stars"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_appended_output_is_cut_back_to_its_last_whole_write(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    rows = [{"id": str(i), "stars": i, "label": "positive", "p_positive": 0.9, "answer": None} for i in range(4)]
    sink = Sink(out, COLUMNS, resume=False)
    sink.write(rows[:2])
    with open(out, "ab") as f:
        f.write(b'2,3,positive,"0.8')  # a kill in the middle of the next write
    with pytest.raises(DataError, match="holds an unfinished run: add --resume"):
        Sink(out, COLUMNS, resume=False)
    again = Sink(out, COLUMNS, resume=True)
    assert again.done == {"0", "1"}
    again.write(rows[2:])
    again.finish()
    assert not (tmp_path / f"out{suffix}.progress").exists()
    if suffix == ".jsonl":
        got = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    else:
        got = list(pd.read_csv(out, sep="\t" if suffix == ".tsv" else ",", dtype=str)["id"])
    assert got == ["0", "1", "2", "3"]
    finished = out.read_bytes()
    assert Sink(out, COLUMNS, resume=True).done == {"0", "1", "2", "3"} and out.read_bytes() == finished


def test_parquet_output_is_written_in_parts_and_merged(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    rows = [{"id": str(i), "stars": i, "label": "negative", "p_positive": None, "answer": "Negative"} for i in range(5)]
    sink = Sink(out, COLUMNS, resume=False)
    sink.write(rows[:2])  # no p_positive at all in this part
    sink.close()  # an interrupt keeps what was gathered
    sink.write([{**r, "p_positive": 0.25} for r in rows[2:4]])
    sink.close()
    assert not out.exists() and len(list((tmp_path / "out.parquet.parts").iterdir())) == 2
    resumed = Sink(out, COLUMNS, resume=True)
    assert resumed.done == {"0", "1", "2", "3"}
    resumed.write(rows[4:])
    resumed.finish()
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert pq.ParquetFile(out).num_row_groups == 3 and not (tmp_path / "out.parquet.parts").exists()
    assert table.column("id").to_pylist() == ["0", "1", "2", "3", "4"]
    assert table.column("p_positive").to_pylist()[1:4] == [None, 0.25, 0.25]
    again = Sink(out, COLUMNS, resume=True)  # a finished file: all done, and kept
    assert again.done == {"0", "1", "2", "3", "4"}
    again.write([{**rows[0], "id": "5"}])
    again.finish()
    assert pq.read_table(out).column("id").to_pylist() == ["0", "1", "2", "3", "4", "5"]
    with pytest.raises(DataError, match="already holds labels: add --overwrite"):
        Sink(out, COLUMNS)
    assert Sink(out, COLUMNS, overwrite=True).done == set() and not out.exists()  # replaced


def test_classify_streams_a_file_and_matches_the_texts_classified_at_once(tiny_model: Path, tmp_path: Path) -> None:
    frame = _frame(9)
    path = _write(frame, tmp_path / "in.parquet")
    out = tmp_path / "labels.parquet"
    args = ["classify", "--input", str(path), "--text-column", "review", "--model", str(tiny_model)]
    result = runner.invoke(app, [*args, "--output", str(out), "--keep-columns", "stars", "--chunk-size", "4"])
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(out)
    assert list(labels.columns) == ["id", "stars", "label", "p_positive"]
    assert sorted(labels["id"], key=int) == [str(i) for i in range(9)] and labels["id"].is_unique
    at_once = runner.invoke(app, ["classify", *frame["review"], "--model", str(tiny_model), "--json"])
    expected = {r["id"]: r for r in map(json.loads, at_once.stdout.splitlines())}
    for row in labels.itertuples():
        assert row.label == expected[row.id]["label"]
        assert row.p_positive == pytest.approx(expected[row.id]["p_positive"], abs=1e-4)
        assert row.stars == frame["stars"][int(row.id)]
    assert "saved 9 labels" in result.output


def test_classify_json_streams_rows_from_a_file(tiny_model: Path, tmp_path: Path) -> None:
    path = _write(_frame(5), tmp_path / "in.jsonl")
    result = runner.invoke(
        app,
        [
            "classify",
            "-i",
            str(path),
            "--text-column",
            "review",
            "--keep-columns",
            "",
            "--model",
            str(tiny_model),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == [str(i) for i in range(5)]
    assert set(rows[0]) == {"id", "label", "p_positive"}


def test_resume_needs_an_output(tiny_model: Path, tmp_path: Path) -> None:
    path = _write(_frame(3).assign(label=1), tmp_path / "in.csv")
    base = ["classify", "-i", str(path), "--text-column", "review", "--model", str(tiny_model)]
    result = runner.invoke(app, [*base, "--resume"])
    assert result.exit_code == 1 and "--resume continues an --output file" in result.output


def test_kept_columns_keep_their_names_and_a_clashing_one_is_prefixed(tiny_model: Path, tmp_path: Path) -> None:
    """A labelled file keeps its gold labels beside sentiq's; the text column keeps its name."""
    path = _write(_frame(3).assign(label=["positive", "negative", "positive"]), tmp_path / "in.csv")
    out = tmp_path / "o.csv"
    base = ["classify", "-i", str(path), "--text-column", "review", "--model", str(tiny_model), "--output", str(out)]
    result = runner.invoke(app, [*base, "--keep-columns", "review,label,stars"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("--keep-columns label: written as 'input_label' (sentiq writes a 'label' column)") == 1
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == ["id", "review", "input_label", "stars", "label", "p_positive"]
    assert list(written["input_label"]) == ["positive", "negative", "positive"]
    assert list(written["review"]) == list(_frame(3)["review"])
    default = runner.invoke(app, [*base[:-1], str(tmp_path / "d.csv")])  # --keep-columns text: the text, by its name
    assert default.exit_code == 0 and list(pd.read_csv(tmp_path / "d.csv").columns)[:2] == ["id", "review"]
    twice = _write(_frame(2).assign(label="x", input_label="y"), tmp_path / "twice.csv")
    refused = runner.invoke(
        app, [*base[:2], str(twice), *base[3:-1], str(tmp_path / "t.csv"), "--keep-columns", "label,input_label"]
    )
    assert refused.exit_code == 1 and "two columns would be written as 'input_label'" in refused.output


@pytest.mark.parametrize("sep,suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_a_row_longer_than_its_header_is_refused_before_anything_is_labelled(
    tmp_path: Path, tiny_model: Path, sep: str, suffix: str
) -> None:
    """An unquoted separator in a one-column file: pandas alone takes the first field as a row index."""
    path = tmp_path / f"reviews{suffix}"
    rows = [f"fine {i}" for i in range(5)] + [f"Great blender{sep} very quiet.", "Broke after two days."]
    path.write_text("review\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    args = ["classify", "--model", str(tiny_model), "--input", str(path), "--text-column", "review"]
    result = runner.invoke(app, [*args, "--output", str(out), "--chunk-size", "2"])
    assert result.exit_code == 1
    assert f"{path} line 7: 2 fields where the header has 1; put a text that holds a " in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # the fault lies past the first chunks: found before any is labelled


def test_quoted_separators_and_line_breaks_read_as_one_field(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('review,stars\n"Great, quiet.",5\n"two\nlines",1\nshort\n', encoding="utf-8")
    (chunk,) = open_source(path, "review", ["stars"]).chunks(10)
    assert list(chunk["text"]) == ["Great, quiet.", "two\nlines", "short"]
    assert list(chunk["stars"]) == ["5", "1", ""]  # a short row is filled, never shifted


def test_a_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("text,text\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="names column 'text' twice"):
        open_source(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_outputs_follow_the_input_order_within_and_across_chunks(tmp_path: Path, tiny_model: Path, suffix: str) -> None:
    """Batches run longest first; rows, --json lines and the table still come in the input's order."""
    words = [3, 40, 1, 25, 7, 60, 2, 18, 33]  # lengths that a longest-first plan would reorder
    texts = [" ".join(["film"] * n) for n in words]
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": [f"r{i:02d}" for i in range(len(texts))], "text": texts}).to_csv(source, index=False)
    out = tmp_path / f"labels{suffix}"
    args = ["classify", "--model", str(tiny_model), "--input", str(source), "--chunk-size", "4", "--batch-size", "1"]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype=str)
    assert list(written["id"]) == [f"r{i:02d}" for i in range(len(texts))]
    streamed = runner.invoke(app, [*args, "--json"])
    assert [json.loads(line)["id"] for line in streamed.stdout.splitlines()] == list(written["id"])


def test_outputs_hold_what_the_method_fills_to_six_digits(tmp_path: Path, tiny_model: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("great film\n", encoding="utf-8")
    args = ["classify", "--model", str(tiny_model), "--input", str(source)]
    scored = runner.invoke(app, [*args, "--output", str(tmp_path / "s.csv")])
    assert scored.exit_code == 0 and "saved 1 label in" in scored.output
    row = pd.read_csv(tmp_path / "s.csv", dtype=str).iloc[0]
    assert list(row.index) == ["id", "text", "label", "p_positive"]  # loglik writes no answer
    assert len(row["p_positive"].partition(".")[2]) <= 6
    generated = runner.invoke(app, [*args, "--method", "zero-shot", "--max-new-tokens", "2", "--json"])
    assert set(json.loads(generated.stdout)) == {"id", "text", "label", "p_positive", "answer"}
