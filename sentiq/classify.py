"""What `classify` does: gather texts from arguments, stdin or a file, label them, keep the output safe."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sentiq.data import read_texts
from sentiq.errors import DataError, Interrupted
from sentiq.evaluation import StartTask, load_engine
from sentiq.files import atomic_write
from sentiq.methods import Classifier, Prediction
from sentiq.settings import MethodConfig, ModelSettings


@dataclass
class Outcome:
    ids: list[str]
    texts: list[str]
    predictions: list[Prediction]
    problems: list[str] = field(default_factory=list)  # one line per text that could not be labelled

    def rows(self) -> list[dict[str, Any]]:
        return [_row(i, t, p) for i, t, p in zip(self.ids, self.texts, self.predictions)]


def gather_texts(
    args: Sequence[str], input_path: Path | None, text_column: str | None, stdin: TextIO
) -> list[tuple[str, str]]:
    """(id, text) pairs: arguments, then lines of stdin ('-' or piped), then the --input file. Every
    line of stdin is a text, as in a .txt file: a blank line is an empty text, reported, not skipped."""
    items: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        if arg == "-":
            items += _lines(stdin)
        else:
            items.append((str(i), arg))
    if not args and input_path is None and stdin is not None and not stdin.isatty():
        items += _lines(stdin)
    if input_path is not None:
        df = read_texts(input_path.expanduser(), text_column)
        items += list(zip(df["id"], df["text"]))
    if not items:
        raise DataError("no texts to classify: pass them as arguments, pipe them on stdin, or use --input FILE")
    return items


def _lines(stdin: TextIO) -> list[tuple[str, str]]:
    return [(f"stdin:{j}", line) for j, line in enumerate(stdin.read().splitlines())]


def classify_texts(
    items: list[tuple[str, str]],
    settings: ModelSettings,
    method: MethodConfig,
    start_task: StartTask,
    output: Path | None = None,
    tuned_in: Path | None = None,
) -> Outcome:
    """Label every non-empty text; empty ones are reported, not guessed. `tuned_in`: the results
    folder whose tuning/<model>/ setting the sampling method takes."""
    from sentiq.data import load_pool
    from sentiq.tuning import apply_tuned

    if output is not None and output.suffix.lower() not in (".csv", ".jsonl"):
        raise DataError(f"--output {output}: use a .csv or .jsonl file")
    if tuned_in is not None:
        (method,) = apply_tuned([method], settings.model, tuned_in)
    problems = [f"text {i} is empty; nothing to classify" for i, t in items if not t.strip()]
    usable = [(i, t) for i, t in items if t.strip()]
    ids, texts = [i for i, _ in usable], [t for _, t in usable]
    engine = load_engine(settings)
    pool = load_pool() if method.method == "k-shot" else None
    clf = Classifier(engine, method, pool=pool)
    advance = start_task(f"classify · {method.method}", len(texts))
    partial = output.with_name(output.name + ".partial") if output is not None else None
    sink = open(partial, "w", encoding="utf-8") if partial is not None else None  # noqa: SIM115

    def on_done(idx: list[int], preds: list[Prediction], seconds: float) -> None:
        if sink is not None:  # kept per batch, so an interrupted run loses nothing done
            sink.writelines(json.dumps(_row(ids[i], texts[i], p)) + "\n" for i, p in zip(idx, preds))
            sink.flush()
        advance(len(idx))

    try:
        predictions = clf.predict(texts, on_done) if texts else []
    except KeyboardInterrupt:
        kept = (
            f"the labels made so far are in {partial}"
            if partial
            else "nothing was written (--output FILE keeps labels as they come)"
        )
        raise Interrupted(f"interrupted; {kept}") from None
    finally:
        if sink is not None:
            sink.close()
    outcome = Outcome(ids, texts, predictions, problems)
    if output is not None:
        _write_output(output, outcome)
        partial.unlink(missing_ok=True)
    return outcome


def _row(text_id: str, text: str, p: Prediction) -> dict[str, Any]:
    return {"id": text_id, "text": text, "label": p.label, "p_positive": p.p_positive, "answer": p.answer}


def _write_output(path: Path, outcome: Outcome) -> None:
    import pandas as pd

    rows = outcome.rows()
    if path.suffix.lower() == ".jsonl":
        atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    else:
        atomic_write(
            path, pd.DataFrame(rows, columns=["id", "text", "label", "p_positive", "answer"]).to_csv(index=False)
        )
