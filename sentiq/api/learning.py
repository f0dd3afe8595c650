"""What learns from labelled texts, the model frozen: the prompt and sampling searches (`tune_prompt`,
`tune_sampling`) and `fit`, each reading its texts as evaluate does and writing under output_dir; and
`suggest`, the texts a fit would learn most from next."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sentiq.api.classifier import Classifier, held_model
from sentiq.api.options import check_options, data_spec
from sentiq.choices import EMBEDDED
from sentiq.errors import speaks_python
from sentiq.learn_settings import FitSettings, PromptTuneSettings, TuneSettings
from sentiq.progress import StartTask, no_progress
from sentiq.results import FitResult, Suggestions, TuneResult
from sentiq.settings import DataSpec, ModelSettings

if TYPE_CHECKING:
    from sentiq.core.engine import Engine

T = TypeVar("T")


@speaks_python
def tune_prompt(
    model: str | ModelSettings | None = None,
    *,
    dataset: str | DataSpec = EMBEDDED,
    output_dir: str | Path = "results",
    progress: StartTask | None = None,
    **settings: Any,
) -> TuneResult:
    """Choose the prompt, label words, calibration and ending for a model by loglik accuracy (macro
    recall on a stratified sample) on tuning texts: the embedded tuning reviews, or a sample of `dataset`
    (read as evaluate reads it) in its label set. Saved under output_dir/tuning/<model>/ (and the label
    set's name, for a set other than positive/negative), where `tuned=True` finds it; evaluating with it
    leaves the tuning texts out. settings: PromptTuneSettings' fields (prompts, n, sample, ensemble,
    tail, k, draws, demos, max_tokens, seed), and text_column, label_column, label_map, device and dtype
    as evaluate takes them."""
    from sentiq.workflows.tuning.prompts import tune_prompt as search_prompts

    models, _, chosen = _search(PromptTuneSettings, "tune_prompt", model, dataset, output_dir, settings)
    return search_prompts(models, chosen, progress or no_progress)


@speaks_python
def tune_sampling(
    model: str | ModelSettings | None = None,
    *,
    dataset: str | DataSpec = EMBEDDED,
    output_dir: str | Path = "results",
    progress: StartTask | None = None,
    **settings: Any,
) -> TuneResult:
    """Search temperature x top-k for the sampling method on tuning texts chosen as tune_prompt's; saved
    where `tuned=True` finds it. settings: TuneSettings' fields (temperatures, top_ks, n, sample,
    samples, prompt, seed), and text_column, label_column, label_map, device and dtype as evaluate takes
    them."""
    from sentiq.workflows.tuning.sampling import tune_sampling as search_sampling

    models, _, chosen = _search(TuneSettings, "tune_sampling", model, dataset, output_dir, settings)
    return search_sampling(models, chosen, progress or no_progress)


@speaks_python
def fit(
    model: str | ModelSettings | Classifier | None = None,
    *,
    dataset: str | DataSpec = EMBEDDED,
    output_dir: str | Path = "results",
    progress: StartTask | None = None,
    **settings: Any,
) -> FitResult:
    """Learn from labelled texts without training the model: one pass collects each text's label
    log-probabilities and its hidden state at the answer position (after `layer` layers; None: all),
    and a logistic regression is fitted on each (fitted calibration, probe), scored by cross-validation.
    Saved under output_dir/fits/<model>/<labels>/<name>/; use it with `method="probe", fit=PATH` or
    `calibrate="fitted", fit=PATH`. The texts: the embedded tuning reviews, or a sample of `dataset`
    (read as evaluate reads it) in the prompt's label set. settings: FitSettings' fields (prompt, n,
    sample, seed, layer, name, max_tokens, overwrite, add; `exits=[6, 12]` for early exits, `then=MODEL`
    for a cascade across models, `max_loss` for either: docs/early-exits.md), and text_column,
    label_column, label_map, device and dtype as evaluate takes them. model: a name, settings, or a
    Classifier whose loaded model is reused."""
    from sentiq.workflows.fitting import fit as run_fit

    models, engine, chosen = _search(FitSettings, "fit", model, dataset, output_dir, settings)
    return run_fit(models, chosen, progress or no_progress, engine)


@speaks_python
def suggest(
    fit: str | Path,
    pool: str | Path,
    *,
    n: int = 50,
    output: str | Path = "next.csv",
    model: str | ModelSettings | Classifier | None = None,
    text_column: str | None = None,
    overwrite: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    progress: StartTask | None = None,
) -> Suggestions:
    """The `n` texts of `pool` (a file or folder, as classify reads it) the fit would learn most from:
    those its probe is least sure of, no two near-duplicates, none it was fitted on; written to `output`
    (.csv: id, text, guess, confidence and an empty label column to fill, then `fit(..., add=output)`).
    model: the fit's own unless given (a name, settings, or a Classifier whose loaded model is reused)."""
    from sentiq.workflows.suggest import fit_model
    from sentiq.workflows.suggest import suggest as pick_texts

    for name, value in (("fit", fit), ("pool", pool), ("output", output)):
        if not isinstance(value, str | PathLike):
            raise TypeError(f"{name} must be a path, not {type(value).__name__}")
    models, engine = held_model(model if model is not None else fit_model(str(fit)), device, dtype)
    start = progress or no_progress
    return pick_texts(models, str(fit), Path(pool), n, Path(output), text_column, overwrite, start, engine)


READING = ("text_column", "label_column", "label_map", "device", "dtype")  # how a search reads its data and model


def _search(
    kind: type[T],
    what: str,
    model: str | ModelSettings | Classifier | None,
    dataset: str | Path | DataSpec,
    output_dir: str | Path,
    given: dict,
) -> tuple[ModelSettings, Engine | None, T]:
    """A search's model (and a Classifier's loaded one, reused) and settings from its call's keywords
    (misspelt ones named with the nearest)."""
    reading = {k: given.pop(k) for k in READING if k in given}
    check_options(kind, given, what, fixed=("output_dir", "data"), also=READING)
    if not isinstance(output_dir, str | Path):
        raise TypeError(f"output_dir must be a path, not {type(output_dir).__name__}")
    label_column = reading.get("label_column", DataSpec.label_column)
    data = data_spec(dataset, reading.get("text_column"), label_column, reading.get("label_map"))
    models, engine = held_model(model, reading.get("device", "auto"), reading.get("dtype", "auto"))
    return models, engine, kind(output_dir=Path(output_dir), data=data, **given)
