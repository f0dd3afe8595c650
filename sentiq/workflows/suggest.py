"""What `sentiq suggest` does: read a pool of unlabelled texts, leave out those the fit already holds,
read each remaining text's state once with the fit's probe, and write the texts it would learn most
from (methods.suggesting) with its guess and an empty label column to fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sentiq.core.engine import Engine, load_engine
from sentiq.errors import DataError, OptionError
from sentiq.io.files import write_frame
from sentiq.io.sources import open_source
from sentiq.methods.fit import load_fit
from sentiq.methods.plan import plan_method
from sentiq.methods.runner import make_runner
from sentiq.methods.suggesting import pick
from sentiq.progress import StartTask, no_progress
from sentiq.results import Suggestions
from sentiq.settings import MethodConfig, ModelSettings
from sentiq.text import clean_text, plural, text_digest
from sentiq.workflows.classify import refuse_input_as_output

COLUMNS = ("id", "text", "guess", "confidence", "label")  # label: empty, for the user to fill


def suggest(
    model: ModelSettings,
    fit_path: str,
    pool: Path,
    n: int,
    output: Path,
    text_column: str | None = None,
    overwrite: bool = False,
    start_task: StartTask = no_progress,
    engine: Engine | None = None,
) -> Suggestions:
    """Pick `n` texts of `pool` for the fit to learn from and write them to `output` (a .csv). Everything
    that can be refused is refused before the model loads."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be a whole number of texts, not {type(n).__name__}")
    if n < 1:
        raise OptionError(f"--n must be at least 1, not {n}")
    output = Path(output)
    if output.suffix.lower() != ".csv":
        raise OptionError(f"--output {output}: suggestions are written as a .csv (to fill in and fit on)")
    source = open_source(Path(pool), text_column)
    refuse_input_as_output(source.origin, output)
    _check_output(output, overwrite)
    fit = load_fit(fit_path)
    chunks = list(source.chunks(10_000))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=["id", "text"])
    texts = _new_texts(frame, fit.texts, pool, n)
    engine = engine or load_engine(model)
    config = MethodConfig(method="probe", fit=fit_path, prompt=fit.prompt_spec, max_tokens=fit.card["max_tokens"])
    runner = make_runner(engine, plan_method(config))
    advance = start_task(f"suggest · {model.source.label}", len(texts))
    states = np.zeros((len(texts), engine.model.config.hidden_size))
    for done in runner.probe_states(list(texts["text"])):
        states[done.indices] = done.result
        advance(len(done.indices))
    probs = np.exp(fit.probe.logprobs(states))
    standardized = (states - fit.probe.mean) / fit.probe.scale
    chosen = pick(probs, standardized, n)
    labels = fit.labels
    rows = texts.iloc[chosen].assign(
        guess=[labels[int(probs[i].argmax())] for i in chosen],
        confidence=[round(float(probs[i].max()), 6) for i in chosen],
        label="",
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    write_frame(output, rows[list(COLUMNS)])
    return Suggestions(output, len(chosen), len(texts), len(frame) - len(texts))


def _check_output(output: Path, overwrite: bool) -> None:
    """Refuse an output that is a folder, lies behind a file, or exists (unless `overwrite`)."""
    if output.is_dir():
        raise OptionError(f"--output {output} is a folder: name a .csv file")
    blocking = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OptionError(f"--output {output}: {blocking} is a file, so the folder cannot be made")
    if output.exists() and not overwrite:
        raise OptionError(f"--output {output} already exists: give another name, or --overwrite to replace it")


def fit_model(fit_path: str) -> str:
    """The model a fit was made on, as --model names it."""
    return str(load_fit(fit_path).card["model"]["source"])


def _new_texts(frame: pd.DataFrame, held: frozenset[str], pool: Path, n: int) -> pd.DataFrame:
    """The pool's texts that are not empty, not the fit's own and not repeated; refused when none are
    left, or fewer than `n`."""
    if frame.empty:
        raise DataError(f"--input {pool} holds no texts")
    texts = frame[[bool(clean_text(t).strip()) for t in frame["text"]]]
    digests = pd.Series([text_digest(t) for t in texts["text"]], index=texts.index)
    fresh = texts[~digests.isin(held) & ~digests.duplicated()]
    if fresh.empty:
        raise DataError(
            f"--input {pool}: every text is one the fit was fitted on (or empty): give texts it has not seen"
        )
    if len(fresh) < n:
        raise OptionError(
            f"--n {n}: the pool has {plural(len(fresh), 'text')} the fit has not seen; ask for at most {len(fresh)}"
        )
    return fresh.reset_index(drop=True)
