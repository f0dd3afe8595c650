"""`sentiq.classify_file`: a file or folder of any size labelled chunk by chunk into an output, resumable."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sentiq.api.classifier import Classifier
from sentiq.api.options import Rows, method_config, model_settings, tuned_methods
from sentiq.errors import OptionError, speaks_python
from sentiq.progress import StartTask, no_progress
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings

if TYPE_CHECKING:
    from sentiq.core.engine import Engine
    from sentiq.workflows.classify import Summary


@speaks_python
def classify_file(
    input: str | Path | Sequence[tuple[str, str]],
    output: str | Path | None = None,
    classifier: Classifier | None = None,
    *,
    model: str | ModelSettings | None = None,
    method: str | MethodConfig | None = None,
    device: str = "auto",
    dtype: str = "auto",
    text_column: str | None = None,
    keep_columns: str = ClassifySettings.keep_columns,
    chunk_size: int = ClassifySettings.chunk_size,
    resume: bool = False,
    overwrite: bool = False,
    tuned: bool = False,
    results_dir: str | Path = "results",
    on_rows: Rows | None = None,
    progress: StartTask | None = None,
    scale: RaySettings | None = None,
    engine: Engine | None = None,
) -> Summary:
    """Label a .txt/.csv/.tsv/.jsonl/.json/.parquet file, or a folder of them, chunk by chunk into `output`
    (.csv, .tsv, .jsonl or .parquet), each batch written as it is done: memory stays flat whatever the
    input's size, and `resume=True` continues an interrupted output without redoing or repeating a text.
    `input` may also be (id, text) pairs. The model is named one way: `classifier` (its model and method),
    `model` (loaded, with `method` (default loglik), once the input and output have been checked) or
    `engine` (a model already loaded, with `method`); giving two is refused. `on_rows` receives each
    batch's rows; `scale=RaySettings(backend="ray", ...)` runs on a Ray cluster (file to folder)."""
    from sentiq.workflows.classify import classify, classify_on_ray, make_source

    settings = ClassifySettings(
        Path(output) if output is not None else None, text_column, keep_columns, chunk_size, resume, overwrite
    )
    _one_model(classifier, model, engine, method, scale)
    loaded = classifier.engine if classifier is not None else engine
    models = model_settings(model if loaded is None else loaded.lm.source.ref, device, dtype)
    config = classifier.method if classifier is not None else method_config(method or "loglik")
    (config,) = tuned_methods([config], models, tuned, results_dir)
    if scale is not None and scale.backend == "ray":
        if isinstance(input, str | Path):
            return classify_on_ray(Path(input), settings, models, config, scale)
        raise OptionError("--backend ray labels an --input file or folder into an --output (a folder of files)")
    items = [] if isinstance(input, str | Path) else list(input)
    path = Path(input) if isinstance(input, str | Path) else None
    source = make_source(items, path, settings)
    return classify(source, settings, models, config, progress or no_progress, on_rows, loaded)


def _one_model(
    classifier: Classifier | None,
    model: object,
    engine: object,
    method: object,
    scale: RaySettings | None,
) -> None:
    """classify_file's model named one way only: a second way would be silently ignored."""
    given = [
        name for name, value in (("classifier", classifier), ("model", model), ("engine", engine)) if value is not None
    ]
    if len(given) > 1:
        raise OptionError(f"name the model one way: {' and '.join(f'{n}=' for n in given)} were both given")
    if classifier is not None and method is not None:
        raise OptionError("classifier= carries its own method: leave method= out (or pass model= and method=)")
    if engine is not None and scale is not None and scale.backend == "ray":
        raise OptionError("engine= is a model loaded in this process; on Ray give model= and each worker loads it")
