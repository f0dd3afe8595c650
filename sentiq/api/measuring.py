"""Measuring: `sentiq.evaluate` (methods on a labelled sample, in memory unless saved), the tuning
searches, and `sentiq.compare` over saved runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sentiq.api.classifier import Classifier, held_model
from sentiq.api.options import LabelMap, data_spec, method_configs, tuned_methods
from sentiq.choices import EMBEDDED, Device, DType, Method, Metric, SampleRule, method_names
from sentiq.errors import OptionError, speaks_python
from sentiq.progress import StartTask, no_progress
from sentiq.results import Comparison, RunResult
from sentiq.settings import DataSpec, EvalSettings, MethodConfig, ModelSettings, RaySettings

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Evaluation:
    """Each method's run on one sample: `metrics` (a row per method), `predictions` (a row per text and
    method), `runs` (each with its settings); `save(folder)` writes the run folders."""

    runs: list[RunResult]

    @property
    def metrics(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"run_id": r.run_id, "method": r.method.title(), **r.metrics} for r in self.runs])

    @property
    def predictions(self) -> pd.DataFrame:
        import pandas as pd

        frames = [r.predictions.assign(method=r.method.title(), run_id=r.run_id) for r in self.runs]
        return pd.concat(frames, ignore_index=True)

    @speaks_python
    def save(self, folder: str | Path = "results") -> list[Path]:
        """Write each run as a run folder under `folder` (config.json, predictions.csv, metrics, the
        confusion matrix), as `sentiq evaluate` leaves them; their paths."""
        from sentiq.workflows.run_files import save_result

        return [save_result(r, Path(folder)) for r in self.runs]


@speaks_python
def evaluate(
    model: str | ModelSettings | Classifier | None = None,
    methods: Method | Literal["all"] | MethodConfig | Sequence[Method | Literal["all"] | MethodConfig] = "loglik",
    *,
    dataset: str | DataSpec = EMBEDDED,
    n: int | None | Literal["auto"] = "auto",
    seed: int = 0,
    sample: SampleRule = EvalSettings.sample,
    text_column: str | None = None,
    label_column: str = DataSpec.label_column,
    label_map: LabelMap = None,
    tuned: bool = False,
    results_dir: str | Path = "results",
    output_dir: str | Path | None = None,
    run_id: str | None = None,
    resume: bool = False,
    device: Device = "auto",
    dtype: DType = "auto",
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    scale: RaySettings | None = None,
    progress: StartTask | None = None,
    **options: Any,
) -> Evaluation:
    """Measure methods on one balanced labelled sample of `n` texts (None: all; "auto": 200, or the
    largest sample a smaller dataset allows, said as a warning).

    dataset: 'imdb-sample' (embedded), a .csv/.tsv/.jsonl/.json/.parquet file, or a hub dataset id;
    text_column, label_column and label_map say how to read it ('1=positive,0=negative'). methods: names
    ('loglik', 'zero-shot', 'k-shot', 'sampling', 'all') or MethodConfig objects; options (prompt,
    calibrate, k, ...) apply to every method named. Kept in memory unless output_dir is given: then each
    method's run folder is written there as predictions arrive, and `resume=True` with the same `run_id`
    continues an interrupted one. model: a name, settings, or a Classifier whose loaded model is reused."""
    if isinstance(n, str) and n != "auto":
        raise TypeError(f"n must be an int, None (every text) or 'auto', not {n!r}")
    names = [methods] if isinstance(methods, str | MethodConfig) else list(methods)
    expanded = [m for name in names for m in ([name] if isinstance(name, MethodConfig) else method_names([name]))]
    configs = method_configs(expanded, **options)
    models, engine = held_model(model, device, dtype, batch_size, max_batch_tokens)
    data = data_spec(dataset, text_column, label_column, label_map)
    settings = EvalSettings(
        model=models,
        data=data,
        methods=tuned_methods(configs, models, tuned, results_dir),
        n=EvalSettings.n if n == "auto" else n,
        n_given=n != "auto",
        seed=seed,
        sample=sample,
        output_dir=Path(output_dir) if output_dir is not None else None,
        run_id=run_id,
        resume=resume,
        ray=scale or RaySettings(),
    )
    from sentiq.workflows.evaluate import evaluate as run_evaluate

    return Evaluation(run_evaluate(settings, progress or no_progress, engine))


@speaks_python
def resume_run(
    run_id: str,
    output_dir: str | Path = "results",
    *,
    progress: StartTask | None = None,
    **options: Any,
) -> Evaluation:
    """Continue a saved run (or the runs that share `run_id`, one per method) under `output_dir` with
    the settings it began with, read back from its config.json; a finished one is left as it is.
    options: any of evaluate's (model, device, dtype, batch_size, max_batch_tokens, dataset, text_column,
    label_column, label_map, split, methods, n, sample, seed, the method's, and the Ray settings; model may
    be a Classifier, whose loaded model is reused), laid over the recorded settings. One that differs from
    the record is refused, named; device, dtype, batch_size, max_batch_tokens and the backend may differ
    (the run records each change)."""
    from sentiq.workflows.evaluate import evaluate as run_evaluate
    from sentiq.workflows.resuming import laid_over, recorded_settings

    if not isinstance(run_id, str):
        raise TypeError(f"run_id must be a run folder's name (a string), not {type(run_id).__name__}")
    engine = None
    if isinstance(options.get("model"), Classifier):  # its loaded model, reused
        models, engine = held_model(options["model"])
        options["model"] = models.model
    settings = laid_over(recorded_settings(Path(output_dir), run_id), {"device": "auto", **options})
    return Evaluation(run_evaluate(settings, progress or no_progress, engine))


@speaks_python
def compare(
    results_dir: str | Path = "results",
    metric: Metric = "macro_f1",
    *,
    write: bool = False,
    html: str | Path | None = None,
) -> Comparison:
    """Rank the complete runs under results_dir (`.table`, a DataFrame), with warnings and agreement.
    write: also save comparison.csv and comparison.png there; html: also write the HTML report."""
    from sentiq.workflows.compare import compare as rank

    root = Path(results_dir)
    page = _report_path(html) if html is not None else None
    result = rank(root, metric)
    if write:
        from sentiq.workflows.compare import save_comparison

        save_comparison(result, root)
    if html is not None:
        from sentiq.report.html import write_report

        page.parent.mkdir(parents=True, exist_ok=True)
        write_report(page, result, root, metric)
        result.files.append(page)
    return result


def _report_path(html: str | Path) -> Path:
    """Where the report goes, refused before anything is ranked when no file can be written there (its
    missing folders are made, as an --output's are)."""
    if not isinstance(html, str | Path):
        raise TypeError(f"html must be a path, not {type(html).__name__}")
    page = Path(html).expanduser()
    if page.is_dir():
        raise OptionError(f"--html {html} is a folder: name the report's file (e.g. {page / 'report.html'})")
    blocking = next((p for p in page.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OptionError(f"--html {html}: {blocking} is a file, not a folder")
    return page
