"""What `classify` does: texts from arguments, stdin, a file or a folder of files, labelled chunk by
chunk and written a chunk at a time in the input's order, so memory stays flat whatever the input's size
and an interrupted run resumes without redoing or repeating a text."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiq.core.engine import Engine, load_engine
from sentiq.core.models import resolve_source
from sentiq.errors import DataError, Interrupted, OptionError, OutputClosed, listed
from sentiq.io.files import same_or_inside
from sentiq.io.sinks import Sink
from sentiq.io.sources import TextSource, in_memory, open_source
from sentiq.methods.calibration import prior_from_record
from sentiq.methods.classifier import Classifier, label_set
from sentiq.methods.prompts import load_prompts
from sentiq.predictions import Prediction, output_fields, output_row
from sentiq.progress import Advance
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings
from sentiq.text import clean_text, word_count

log = logging.getLogger(__name__)
INPUT_PREFIX = "input_"  # a kept input column named like one sentiq writes

Emit = Callable[[list[dict[str, Any]]], None]


@dataclass
class Summary:
    texts: int = 0  # labelled by this run
    skipped: int = 0  # already in the output (--resume)
    words: int = 0
    seconds: float = 0.0
    truncated: int = 0  # texts that lost their middle to --max-tokens
    empty: list[str] = field(default_factory=list)  # where the empty texts are: reported and skipped
    output: Path | None = None
    already_complete: bool = False  # --resume of a finished output that the input added nothing to
    calibration: dict[str, Any] | None = None  # the prior divided out, and what it was estimated on
    tuned: str | None = None  # what --tuned applied


def make_source(items: list[tuple[str, str]], input_path: Path | None, settings: ClassifySettings) -> TextSource:
    """Texts from arguments/stdin or from --input (not both), checked before any model loads."""
    keep = settings.keep()
    if input_path is not None:
        if items:
            raise OptionError("give texts as arguments, on stdin or with --input, not several at once")
        return open_source(input_path, settings.text_column, keep)
    if not items:
        raise DataError("no texts to classify: pass them as arguments, pipe them on stdin, or use --input FILE")
    return in_memory(items, keep)


def classify(
    source: TextSource,
    settings: ClassifySettings,
    model: ModelSettings,
    method: MethodConfig,
    start_task: Callable[[str, int | None], Advance],
    emit: Emit | None = None,
    tuned_in: Path | None = None,
    engine: Engine | None = None,
) -> Summary:
    """Label every non-empty text; rows go to --output and to `emit` as each batch is done. `engine`: a
    model already loaded (as evaluate takes one), else `model` is loaded."""
    from sentiq.io.datasets import pool_for
    from sentiq.workflows.tuning.choices import apply_tuned

    if tuned_in is not None:
        (method,) = apply_tuned([method], model.model, tuned_in)
    prompts = load_prompts(method.prompt)  # a broken prompt file fails before the model loads
    labels = label_set(prompts)
    if method.demos is not None and source.origin is not None and same_or_inside(Path(method.demos), source.origin):
        raise OptionError(
            f"--demos {method.demos} holds texts being classified (--input {source.origin}): "
            "draw demonstrations from other texts"
        )
    names = kept_names(source.keep, source.text_column, labels)
    columns = output_columns(names, labels, method)
    if (settings.resume or settings.overwrite) and settings.output is None:
        flag = "--resume continues" if settings.resume else "--overwrite replaces"
        raise OptionError(f"{flag} an --output file: give --output")
    sink = None
    if settings.output is not None:
        refuse_input_as_output(source.origin, settings.output)
        sink = Sink(settings.output, columns, settings.resume, settings.overwrite)
    summary = Summary(output=settings.output, tuned=method.tuned_from)
    clf = Classifier(
        engine or load_engine(model),
        method,
        pool=pool_for(method, labels),
        prompts=prompts,
        **_calibration_kept(settings, method, summary),
    )
    clf.warm_up()
    advance = start_task(f"classify · {method.method}", source.total)
    try:
        with _heap_frozen():
            for chunk in source.chunks(settings.chunk_size):
                _classify_chunk(chunk, source, names, clf, sink, emit, advance, summary)
                _release_memory()
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; {_close_for_resume(sink) or 'nothing was written (--output FILE keeps labels)'}"
        ) from None
    except BrokenPipeError:
        raise OutputClosed(_close_for_resume(sink)) from None
    if sink is not None:
        sink.finish()
        summary.already_complete = sink.complete
    if not summary.texts and not summary.skipped:
        raise DataError(f"nothing to classify: every text is empty ({listed(summary.empty)})")
    return summary


def _close_for_resume(sink: Sink | None) -> str:
    """Make the labels an interrupted run gathered durable, and say where they are for --resume."""
    if sink is None:
        return ""
    sink.close()
    return f"{sink.written} labels are in {sink.path}: the same command with --resume continues"


def refuse_input_as_output(origin: Path | None, output: Path) -> None:
    """An --output that is the input file, lies inside the input folder, or holds it (directly, or
    through a link) would destroy the texts it labels: refused before anything is opened for writing."""
    if origin is None:
        return
    if same_or_inside(output, origin) or same_or_inside(origin, output):
        raise OptionError(f"--output {output} would overwrite the input {origin}: write the labels elsewhere")


def _classify_chunk(
    chunk: Any,
    source: TextSource,
    names: dict[str, str],
    clf: Classifier,
    sink: Sink | None,
    emit: Emit | None,
    advance: Advance,
    summary: Summary,
) -> None:
    if sink is not None and sink.done:
        before = len(chunk)
        chunk = chunk[~chunk["id"].isin(sink.done)]
        summary.skipped += before - len(chunk)
        advance(before - len(chunk))
    if chunk.empty:  # every text already in the output
        return
    empty = chunk["text"].map(lambda t: not clean_text(t)).astype(bool)
    summary.empty += [source.position(i) for i in chunk.loc[empty, "id"]]
    advance(int(empty.sum()))
    chunk = chunk[~empty]
    records = chunk[["id", *names]].rename(columns=names).to_dict("records")
    texts = list(chunk["text"])
    labelled: list[dict[str, Any] | None] = [None] * len(texts)
    answers = not clf.config.scores_labels

    def on_done(idx: list[int], preds: list[Prediction], seconds: float) -> None:
        for i, p in zip(idx, preds):
            labelled[i] = {**records[i], **output_row(p, clf.labels, answers)}
        words = sum(word_count(texts[i]) for i in idx)
        summary.texts += len(idx)
        summary.words += words
        summary.seconds += seconds
        summary.truncated += sum(p.truncated for p in preds)
        advance(len(idx), words, seconds)

    try:
        if texts:
            clf.predict(texts, on_done)
    finally:  # the chunk's rows in input order (batches run longest first); an interrupted chunk keeps its done rows
        rows = [row for row in labelled if row is not None]
        if sink is not None:
            sink.write(rows)
        if emit is not None and rows:
            emit(rows)


def _calibration_kept(settings: ClassifySettings, method: MethodConfig, summary: Summary) -> dict[str, Any]:
    """The prior goes into the summary and, beside --output, into OUTPUT.calibration.json, so that a
    resumed run divides out the prior it began with (batch calibration estimates it on the first chunk)."""
    import json

    from sentiq.io.files import write_json

    output = settings.output
    record = output.with_name(output.name + ".calibration.json") if output is not None else None

    def on_prior(calibration: dict[str, Any]) -> None:
        summary.calibration = calibration
        if record is not None:
            write_json(record, calibration)

    kept = json.loads(record.read_text()) if settings.resume and record is not None and record.is_file() else None
    if kept is None or kept.get("mode") != method.calibrate:
        return {"on_prior": on_prior}
    summary.calibration = kept
    return {"prior": prior_from_record(kept), "on_prior": on_prior}


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """While chunks are labelled, what existed before (modules, the model) is left out of the garbage
    collector's scans, so the collection after each chunk costs microseconds instead of a quarter of a
    second; the heap is handed back as it was."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _release_memory() -> None:
    """Hand the memory a finished chunk freed back to the system (glibc keeps freed pages otherwise,
    and resident memory creeps up over a long input)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def kept_names(keep: tuple[str, ...], text_name: str, labels: tuple[str, ...]) -> dict[str, str]:
    """The input columns an output keeps (`text`: the classified text), each to its name there: the
    text under its own column's name, any other under its own unless sentiq writes a column of that
    name (`label`, `answer`, ...): then under `input_<name>`, said once."""
    written = {"id", *output_fields(labels)}
    names: dict[str, str] = {}
    for column in keep:
        own = text_name if column == "text" else column
        names[column] = f"{INPUT_PREFIX}{own}" if own in written else own
        if names[column] != own:
            log.warning(f"--keep-columns {own}: written as '{names[column]}' (sentiq writes a '{own}' column)")
    twice = next((n for i, n in enumerate(names.values()) if n in list(names.values())[:i] or n in written), None)
    if twice is not None:
        raise OptionError(f"--keep-columns: two columns would be written as '{twice}'; keep one of them")
    return names


def output_columns(names: dict[str, str], labels: tuple[str, ...], method: MethodConfig) -> list[str]:
    """An output's columns: the id, the kept columns under their names there, then the method's."""
    return ["id", *names.values(), *output_fields(labels, answers=not method.scores_labels)]


def classify_on_ray(
    input_path: Path | None,
    settings: ClassifySettings,
    model: ModelSettings,
    method: MethodConfig,
    scale: RaySettings,
    tuned_in: Path | None = None,
) -> Summary:
    """--input labelled into --output on a Ray cluster; Ray Data retries what a dead worker left."""
    from sentiq.backends import ray as ray_backend
    from sentiq.workflows.tuning.choices import apply_tuned

    if input_path is None or settings.output is None:
        raise OptionError("--engine ray labels an --input file or folder into an --output (a folder of files)")
    if settings.resume:
        raise OptionError("--resume is for the local engine: Ray Data retries the work of a worker that stops")
    if "://" not in str(input_path):
        refuse_input_as_output(input_path, settings.output)
    output = settings.output.expanduser()
    if output.exists() and (output.is_file() or any(output.iterdir())) and not settings.overwrite:
        raise DataError(f"{output} already holds labels: add --overwrite to replace them")
    if tuned_in is not None:
        (method,) = apply_tuned([method], model.model, tuned_in)
    text_name = settings.text_column or "text"
    keep = tuple(dict.fromkeys("text" if c == text_name else c for c in settings.keep() if c != "id"))
    labels = label_set(load_prompts(method.prompt))
    names = kept_names(keep, text_name, labels)
    resolve_source(model.model)  # a model that is nowhere fails here, not on every worker
    ray_backend.connect(scale)
    ds = ray_backend.read(str(input_path), settings.text_column, keep, names)
    labelled = ray_backend.label(ds, model, method, scale)
    if "text" in names and names["text"] != "text":
        labelled = labelled.rename_columns({"text": names["text"]})
    columns = output_columns(names, labels, method)
    try:
        written = ray_backend.run(lambda: ray_backend.write(labelled, output, columns, settings.overwrite))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; Ray stopped, and {settings.output} may hold part of the labels") from None
    return Summary(texts=written, output=settings.output)
