"""What `classify` does: texts from arguments, stdin, a file or a folder of files, labelled chunk by
chunk into a stream of steps (workflows.labelling) that writes a chunk at a time in the input's order, so
memory stays flat whatever the input's size and an interrupted run resumes without redoing or repeating
a text. Local chunks go through the same Predictor evaluate uses; on Ray, Ray Data reads and writes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.backends.local import LocalPredictor
from sentiq.core.engine import Engine, load_engine
from sentiq.core.stages import StageClock
from sentiq.errors import DataError, Interrupted, OptionError
from sentiq.io.files import same_or_inside
from sentiq.io.sinks import Sink
from sentiq.io.sources import TextSource, in_memory, open_source
from sentiq.methods.plan import MethodPlan, plan_method
from sentiq.predictions import LabelSet
from sentiq.results import Summary
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings
from sentiq.text import clean_text
from sentiq.workflows.labelling import Labelling, Step, calibration_kept

log = logging.getLogger(__name__)
INPUT_PREFIX = "input_"  # a kept input column named like one sentiq writes


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
    engine: Engine | None = None,
) -> Labelling:
    """Every non-empty text's label, as a stream to iterate inside `with`. Everything that can be refused
    is refused here, before the model loads (`engine`: a model already loaded, else `model` is)."""
    if method.demos is not None and source.origin is not None and same_or_inside(Path(method.demos), source.origin):
        raise OptionError(
            f"--demos {method.demos} holds texts being classified (--input {source.origin}): "
            "draw demonstrations from other texts"
        )
    plan = plan_method(method)  # a broken prompt file fails before the model loads
    names = kept_names(source.keep, source.text_column, plan.label_set)
    if (settings.resume or settings.overwrite) and settings.output is None:
        flag = "--resume continues" if settings.resume else "--overwrite replaces"
        raise OptionError(f"{flag} an --output file: give --output")
    sink = None
    if settings.output is not None:
        refuse_input_as_output(source.origin, settings.output)
        sink = Sink(settings.output, output_columns(names, plan.label_set, method), settings.resume, settings.overwrite)
    kept = calibration_kept(settings.output, settings.resume, method.calibrate)
    summary = Summary(output=settings.output, tuned=method.tuned_from, calibration=kept)
    predictor = LocalPredictor(engine or load_engine(model))
    predictor.runner(plan, kept)  # bound (and warmed up) before the first text is timed
    clock = predictor.engine.clock
    done = set(sink.done) if sink is not None else set()
    steps = _steps(source, settings.chunk_size, names, predictor, plan, done, clock)
    return Labelling(steps, summary, title=f"classify · {method.method}", total=source.total, sink=sink, clock=clock)


def _steps(
    source: TextSource,
    chunk_size: int,
    names: dict[str, str],
    predictor: LocalPredictor,
    plan: MethodPlan,
    done: set[str],
    clock: StageClock,
) -> Iterator[Step]:
    with _heap_frozen():
        for chunk in _timed(source.chunks(chunk_size), clock):
            yield from _chunk_steps(chunk, source, names, predictor, plan, done)
            _release_memory()


def _chunk_steps(
    chunk: pd.DataFrame,
    source: TextSource,
    names: dict[str, str],
    predictor: LocalPredictor,
    plan: MethodPlan,
    done: set[str],
) -> Iterator[Step]:
    """A chunk's steps: the texts the output holds and the empty ones, then one step per batch; the last
    one ends the chunk."""
    before = len(chunk)
    chunk = chunk[~chunk["id"].isin(done)] if done else chunk
    empty = chunk["text"].map(lambda t: not clean_text(t)).astype(bool)
    yield Step(skipped=before - len(chunk), empty=tuple(source.position(i) for i in chunk.loc[empty, "id"]))
    chunk = chunk[~empty].reset_index(drop=True)
    records = chunk[["id", *names]].rename(columns=names).to_dict("records")
    fields = plan.label_set.surface_fields("output", answers=not plan.config.scores_labels)
    todo = pd.DataFrame({"id": range(len(chunk)), "text": chunk["text"]})  # by position: ids may repeat
    for labelled in predictor.predict(plan, todo):
        order = tuple(row["id"] for row in labelled.rows)
        rows = tuple({**records[i], **{f: row[f] for f in fields}} for i, row in zip(order, labelled.rows))
        truncated = sum(bool(row["truncated"]) for row in labelled.rows)
        yield Step(
            rows=rows,
            order=order,
            texts=len(rows),
            words=labelled.words,
            seconds=labelled.seconds,
            truncated=truncated,
            calibration=labelled.calibration,
        )
    yield Step(chunk_end=True)


def _timed(chunks: Iterator[Any], clock: StageClock) -> Iterator[Any]:
    """The chunks, the time spent reading each counted as the `read` stage."""
    while True:
        with clock.stage("read"):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def refuse_input_as_output(origin: Path | None, output: Path) -> None:
    """An --output that is the input file, lies inside the input folder, or holds it (directly, or
    through a link) would destroy the texts it labels: refused before anything is opened for writing."""
    if origin is None:
        return
    if same_or_inside(output, origin) or same_or_inside(origin, output):
        raise OptionError(f"--output {output} would overwrite the input {origin}: write the labels elsewhere")


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


def kept_names(keep: tuple[str, ...], text_name: str, label_set: LabelSet) -> dict[str, str]:
    """The input columns an output keeps (`text`: the classified text), each to its name there: the
    text under its own column's name, any other under its own unless sentiq writes a column of that
    name (`label`, `answer`, ...): then under `input_<name>`, said once."""
    written = {"id", *label_set.surface_fields("output")}
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


def output_columns(names: dict[str, str], label_set: LabelSet, method: MethodConfig) -> list[str]:
    """An output's columns: the id, the kept columns under their names there, then the method's."""
    return ["id", *names.values(), *label_set.surface_fields("output", answers=not method.scores_labels)]


def classify_on_ray(
    input_path: Path | None,
    settings: ClassifySettings,
    model: ModelSettings,
    method: MethodConfig,
    scale: RaySettings,
) -> Labelling:
    """--input labelled into --output on a Ray cluster, as a stream of one step (Ray Data reads, labels
    and writes the blocks, and retries what a dead worker left; it shows its own progress)."""
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
    names = kept_names(keep, text_name, plan.label_set)
    model.source  # noqa: B018 - a model that is nowhere fails here, not on every worker

    def steps() -> Iterator[Step]:
        ray_backend.connect(scale)
        ds = ray_backend.read(str(input_path), settings.text_column, keep, names)
        labelled = ray_backend.label(ds, model, plan, scale)
        if "text" in names and names["text"] != "text":
            labelled = labelled.rename_columns({"text": names["text"]})
        columns = output_columns(names, plan.label_set, method)
        try:
            written = ray_backend.run(lambda: ray_backend.write(labelled, output, columns, settings.overwrite))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; Ray stopped, and {settings.output} may hold part of the labels") from None
        yield Step(texts=written, chunk_end=True)

    summary = Summary(output=settings.output)
    return Labelling(steps(), summary, title=f"classify · {method.method} on Ray", total=None, progress=False)
