"""`sentiq.classify_stream` and `sentiq.classify_file`: a file or folder of any size labelled chunk by
chunk into an output, resumable; the stream hands over each step (its rows, its counts) as it is done, and
where the work runs (this process or a Ray cluster) is decided here, once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sentiq.api.classifier import Classifier, held_model
from sentiq.api.options import method_config, tuned_methods
from sentiq.choices import Device, DType, Method
from sentiq.errors import OptionError, speaks_python
from sentiq.progress import StartTask, no_progress
from sentiq.results import Summary
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings

if TYPE_CHECKING:
    from sentiq.workflows.labelling import Labelling

Input = str | Path | Sequence[tuple[str, str]]


@speaks_python
def classify_stream(
    input: Input,
    output: str | Path | None = None,
    classifier: Classifier | None = None,
    *,
    model: str | ModelSettings | Classifier | None = None,
    method: Method | MethodConfig | None = None,
    device: Device = "auto",
    dtype: DType = "auto",
    text_column: str | None = None,
    keep_columns: str = ClassifySettings.keep_columns,
    chunk_size: int = ClassifySettings.chunk_size,
    resume: bool = False,
    overwrite: bool = False,
    tuned: bool = False,
    results_dir: str | Path = "results",
    scale: RaySettings | None = None,
) -> Labelling:
    """classify_file as a stream, to iterate inside `with`: each step's `rows` are the output rows it
    finished (a chunk's, in the input's order), and its counts (texts, words, seconds, skipped, empty)
    what a progress bar shows; `stream.summary` once the loop ends. Interrupted, the output keeps what
    was labelled, ready for `resume=True`. Arguments as classify_file's."""
    from sentiq.workflows.classify import classify, classify_on_ray, make_source

    if classifier is not None and not isinstance(classifier, Classifier):
        raise TypeError(f"classifier must be a Classifier (sentiq.load makes one), not {type(classifier).__name__}")
    settings = ClassifySettings(output, text_column, keep_columns, chunk_size, resume, overwrite)
    settings = replace(settings, output=Path(output)) if output is not None else settings
    _one_model(classifier, model, method, scale)
    models, engine = held_model(classifier or model, device, dtype)
    config = classifier.method if classifier is not None else method_config(method or "loglik")
    (config,) = tuned_methods([config], models, tuned, results_dir)
    if scale is not None and scale.backend == "ray":
        if isinstance(input, str | Path):
            return classify_on_ray(Path(input), settings, models, config, scale)
        raise OptionError("--backend ray labels an --input file or folder into an --output (a folder of files)")
    items = [] if isinstance(input, str | Path) else list(input)
    path = Path(input) if isinstance(input, str | Path) else None
    source = make_source(items, path, settings)
    return classify(source, settings, models, config, engine)


@speaks_python
def classify_file(
    input: Input,
    output: str | Path | None = None,
    classifier: Classifier | None = None,
    *,
    model: str | ModelSettings | Classifier | None = None,
    method: Method | MethodConfig | None = None,
    device: Device = "auto",
    dtype: DType = "auto",
    text_column: str | None = None,
    keep_columns: str = ClassifySettings.keep_columns,
    chunk_size: int = ClassifySettings.chunk_size,
    resume: bool = False,
    overwrite: bool = False,
    tuned: bool = False,
    results_dir: str | Path = "results",
    progress: StartTask | None = None,
    scale: RaySettings | None = None,
) -> Summary:
    """Label a .txt/.csv/.tsv/.jsonl/.json/.parquet file, or a folder of them, chunk by chunk into `output`
    (.csv, .tsv, .jsonl or .parquet), each chunk written as it is done: memory stays flat whatever the
    input's size, and `resume=True` continues an interrupted output without redoing or repeating a text.
    `input` may also be (id, text) pairs. The model is named one way: `classifier` (its model and method)
    or `model` (a name or settings, loaded once the input and output have been checked; or a Classifier
    whose loaded model is reused), with `method` (default loglik); giving both is refused.
    `scale=RaySettings(backend="ray", ...)` runs on a Ray cluster (file to folder). classify_stream hands
    over the rows as they are made."""
    stream = classify_stream(
        input,
        output,
        classifier,
        model=model,
        method=method,
        device=device,
        dtype=dtype,
        text_column=text_column,
        keep_columns=keep_columns,
        chunk_size=chunk_size,
        resume=resume,
        overwrite=overwrite,
        tuned=tuned,
        results_dir=results_dir,
        scale=scale,
    )
    advance = (progress or no_progress)(stream.title, stream.total if stream.progress else None)
    with stream:
        for step in stream:
            advance(step.done, step.words, step.seconds)
    return stream.summary


def _one_model(classifier: Classifier | None, model: object, method: object, scale: RaySettings | None) -> None:
    """The model named one way only: a second way would be silently ignored."""
    if classifier is not None and model is not None:
        raise OptionError("name the model one way: classifier= and model= were both given")
    if classifier is not None and method is not None:
        raise OptionError("classifier= carries its own method: leave method= out (or pass model= and method=)")
    held = classifier or (model if isinstance(model, Classifier) else None)
    if held is not None and scale is not None and scale.backend == "ray":
        raise OptionError(
            "a Classifier is a model loaded in this process; on Ray give model= a name and each worker loads it"
        )
