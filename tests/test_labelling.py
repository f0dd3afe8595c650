"""classify as one stream of steps (sentiq.classify_stream): rows in the input's order a chunk at a time,
the summary folded from the steps, and a stream left early, interrupted or read twice handled without
losing a label."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sentiq
from sentiq.errors import Interrupted, OptionError, OutputClosed

TEXTS = [f"review {i}: {'a delight' if i % 2 else 'a dull mess'}{'!' * (i % 5)}" for i in range(11)]


@pytest.fixture(scope="module")
def clf(tiny_model: Path) -> sentiq.Classifier:
    return sentiq.load(str(tiny_model), device="cpu", dtype="float32", batch_size=2)


def _items(texts: list[str] = TEXTS) -> list[tuple[str, str]]:
    return [(f"t{i}", t) for i, t in enumerate(texts)]


def test_steps_carry_each_chunks_rows_in_order_and_fold_into_the_summary(clf, tmp_path: Path) -> None:
    texts = [*TEXTS[:4], "", *TEXTS[4:]]  # one empty text, said and never labelled
    out = tmp_path / "out.csv"
    with sentiq.classify_stream(_items(texts), out, clf, chunk_size=4) as stream:
        steps = list(stream)
    rows = [row for step in steps for row in step.rows]
    assert [r["id"] for r in rows] == [f"t{i}" for i in range(len(texts)) if texts[i]]  # the input's order
    assert sum(step.done for step in steps) == len(texts) == stream.total
    summary = stream.summary
    assert (summary.texts, summary.skipped, summary.empty) == (len(TEXTS), 0, ["id t4"])
    assert summary.words == sum(len(t.split()) for t in TEXTS) and summary.seconds > 0
    written = pd.read_csv(out, dtype={"id": str})
    assert list(written["id"]) == [r["id"] for r in rows] and list(written["label"]) == [r["label"] for r in rows]
    assert stream.title == "classify · loglik" and stream.progress


def test_a_stream_is_read_once(clf) -> None:
    stream = sentiq.classify_stream(_items(), classifier=clf)
    assert len([row for step in stream for row in step.rows]) == len(TEXTS)  # without `with` too
    with pytest.raises(OptionError, match="a classify stream is read once"):
        list(stream)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_loop_left_early_keeps_what_it_labelled_and_resume_finishes_it(clf, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    with sentiq.classify_stream(_items(), out, clf, chunk_size=4) as stream:
        for step in stream:
            if step.texts:  # the first batch of the first chunk: its rows are not written yet
                break
    again = sentiq.classify_file(_items(), out, clf, chunk_size=4, resume=True)
    assert 0 < again.skipped < len(TEXTS) and again.skipped + again.texts == len(TEXTS)
    whole = sentiq.classify_file(_items(), tmp_path / f"whole{suffix}", clf, chunk_size=4)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    got, want = (read(p).astype({"id": str}) for p in (out, tmp_path / f"whole{suffix}"))
    assert whole.texts == len(TEXTS) and sorted(got["id"]) == sorted(want["id"])  # every text once
    assert got.set_index("id")["label"].to_dict() == want.set_index("id")["label"].to_dict()


def test_an_interrupt_in_the_consumer_says_where_the_labels_are(clf, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    said = rf"interrupted; \d+ labels are in {out}: the same command with --resume"
    with pytest.raises(Interrupted, match=said), sentiq.classify_stream(_items(), out, clf, chunk_size=4) as stream:
        for step in stream:
            if step.rows:
                raise KeyboardInterrupt
    kept = pd.read_json(out, lines=True, dtype={"id": str})
    assert list(kept["id"]) == ["t0", "t1", "t2", "t3"]  # the first chunk, whole and in order
    with pytest.raises(Interrupted, match="nothing was written"), sentiq.classify_stream(_items(), classifier=clf) as s:
        for _ in s:
            raise KeyboardInterrupt


def test_a_closed_output_pipe_ends_the_stream_in_one_error(clf, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(OutputClosed), sentiq.classify_stream(_items(), out, clf, chunk_size=4) as stream:
        for step in stream:
            if step.rows:
                raise BrokenPipeError
    assert len(pd.read_csv(out)) == 4


def test_classify_stream_refuses_what_classify_file_refuses(clf, tiny_model: Path, tmp_path: Path) -> None:
    from sentiq.settings import RaySettings

    with pytest.raises(OptionError, match="name the model one way"):
        sentiq.classify_stream(_items(), classifier=clf, model=str(tiny_model))
    with pytest.raises(OptionError, match="backend ray labels an input file or folder"):
        sentiq.classify_stream(_items(), model=str(tiny_model), scale=RaySettings(backend="ray"))
    with pytest.raises(sentiq.DataError, match="no texts to classify"):
        sentiq.classify_stream([], classifier=clf)
    empty = sentiq.classify_stream([("a", ""), ("b", "  ")], classifier=clf)
    with pytest.raises(sentiq.DataError, match="nothing to classify: every text is empty"), empty:
        list(empty)
    with pytest.raises(OptionError, match="unknown method 'logic'"):
        sentiq.classify_stream(_items(), model=str(tiny_model), method="logic")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"chunk_size": 0}, OptionError, "chunk_size must be at least 1"),
        ({"chunk_size": "5"}, TypeError, "chunk_size must be an int, not str"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an int, not bool"),
        ({"keep_columns": 5}, TypeError, "keep_columns must be a string, not int"),
        ({"text_column": ["text"]}, TypeError, "text_column must be a string, not list"),
        ({"output": 5}, TypeError, "output must be a path, not int"),
        ({"classifier": "0.5b"}, TypeError, "classifier must be a Classifier .*not str"),
    ],
)
def test_arguments_of_the_wrong_kind_are_named(clf, tmp_path: Path, options: dict, error: type, message: str) -> None:
    given = {"model": clf, **options} if "classifier" not in options else options
    with pytest.raises(error, match=message):
        sentiq.classify_stream(_items(), **given)
    with pytest.raises(error, match=message):
        sentiq.classify_file(_items(), **given)
