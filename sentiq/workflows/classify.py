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
from sentiq.core.stages import StageClock
from sentiq.errors import DataError, Interrupted, OptionError, OutputClosed, listed
from sentiq.io.files import same_or_inside
from sentiq.io.sinks import Sink
from sentiq.io.sources import TextSource, in_memory, open_source
from sentiq.methods.calibration import prior_from_record
from sentiq.methods.plan import plan_method
from sentiq.methods.runner import Batch, MethodRunner, make_runner
from sentiq.predictions import output_fields, output_row
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
    engine: Engine | None = None,
) -> Summary:
    """Label every non-empty text; rows go to --output and to `emit` as each batch is done. `engine`: a
    model already loaded (as evaluate takes one), else `model` is loaded."""
    if method.demos is not None and source.origin is not None and same_or_inside(Path(method.demos), source.origin):
        raise OptionError(
            f"--demos {method.demos} holds texts being classified (--input {source.origin}): "
            "draw demonstrations from other texts"
        )
    plan = plan_method(method)  # a broken prompt file fails before the model loads
    names = kept_names(source.keep, source.text_column, plan.labels)
    columns = output_columns(names, plan.labels, method)
    if (settings.resume or settings.overwrite) and settings.output is None:
        flag = "--resume continues" if settings.resume else "--overwrite replaces"
        raise OptionError(f"{flag} an --output file: give --output")
    sink = None
    if settings.output is not None:
        refuse_input_as_output(source.origin, settings.output)
        sink = Sink(settings.output, columns, settings.resume, settings.overwrite)
    summary = Summary(output=settings.output, tuned=method.tuned_from)
    summary.calibration = _calibration_kept(settings, method)
    prior = prior_from_record(summary.calibration) if summary.calibration else None
    runner = make_runner(engine or load_engine(model), plan, prior)
    advance = start_task(f"classify · {method.method}", source.total)
    try:
        with _heap_frozen():
            for chunk in _timed(source.chunks(settings.chunk_size), runner.engine.clock):
                _classify_chunk(chunk, source, names, runner, sink, emit, advance, summary)
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


def _timed(chunks: Iterator[Any], clock: StageClock) -> Iterator[Any]:
    """The chunks, the time spent reading each counted as the `read` stage."""
    while True:
        with clock.stage("read"):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


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
    runner: MethodRunner,
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
    answers = not runner.config.scores_labels
    try:
        for batch in runner.predict_batches(texts) if texts else ():
            for i, p in zip(batch.indices, batch.predictions):
                labelled[i] = {**records[i], **output_row(p, runner.labels, answers)}
            _count(batch, texts, summary, advance)
            if batch.calibration is not None:
                _keep_calibration(batch.calibration, summary)
    finally:  # the chunk's rows in input order (batches run longest first); an interrupted chunk keeps its done rows
        rows = [row for row in labelled if row is not None]
        with runner.engine.clock.stage("write"):
            if sink is not None:
                sink.write(rows)
            if emit is not None and rows:
                emit(rows)


def _count(batch: Batch, texts: list[str], summary: Summary, advance: Advance) -> None:
    words = sum(word_count(texts[i]) for i in batch.indices)
    summary.texts += len(batch.indices)
    summary.words += words
    summary.seconds += batch.seconds
    summary.truncated += sum(p.truncated for p in batch.predictions)
    advance(len(batch.indices), words, batch.seconds)


def _keep_calibration(calibration: dict[str, Any], summary: Summary) -> None:
    """The prior goes into the summary and, beside --output, into OUTPUT.calibration.json, so that a
    resumed run divides out the prior it began with (batch calibration estimates it on the first chunk)."""
    from sentiq.io.files import write_json

    summary.calibration = calibration
    if summary.output is not None:
        write_json(calibration_path(summary.output), calibration)


def calibration_path(output: Path) -> Path:
    return output.with_name(output.name + ".calibration.json")


def _calibration_kept(settings: ClassifySettings, method: MethodConfig) -> dict[str, Any] | None:
    """The calibration a resumed output began with, when it calibrated as this run does."""
    import json

    if not settings.resume or settings.output is None:
        return None
    record = calibration_path(settings.output)
    kept = json.loads(record.read_text()) if record.is_file() else None
    return kept if kept is not None and kept.get("mode") == method.calibrate else None


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
) -> Summary:
    """--input labelled into --output on a Ray cluster; Ray Data retries what a dead worker left."""
    from sentiq.backends import ray as ray_backend

    if input_path is None or settings.output is None:
        raise OptionError("--backend ray labels an --input file or folder into an --output (a folder of files)")
    if settings.resume:
        raise OptionError("--resume is for the local engine: Ray Data retries the work of a worker that stops")
    if "://" not in str(input_path):
        refuse_input_as_output(input_path, settings.output)
    output = settings.output.expanduser()
    if output.exists() and (output.is_file() or any(output.iterdir())) and not settings.overwrite:
        raise DataError(f"{output} already holds labels: add --overwrite to replace them")
    text_name = settings.text_column or "text"
    keep = tuple(dict.fromkeys("text" if c == text_name else c for c in settings.keep() if c != "id"))
    plan = plan_method(method)
    names = kept_names(keep, text_name, plan.labels)
    model.source  # noqa: B018 - a model that is nowhere fails here, not on every worker
    ray_backend.connect(scale)
    ds = ray_backend.read(str(input_path), settings.text_column, keep, names)
    labelled = ray_backend.label(ds, model, plan, scale)
    if "text" in names and names["text"] != "text":
        labelled = labelled.rename_columns({"text": names["text"]})
    columns = output_columns(names, plan.labels, method)
    try:
        written = ray_backend.run(lambda: ray_backend.write(labelled, output, columns, settings.overwrite))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; Ray stopped, and {settings.output} may hold part of the labels") from None
    return Summary(texts=written, output=settings.output)
