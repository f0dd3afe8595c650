"""The library: load a classifier and label texts, lists or DataFrames; stream a file of any size into
labels; evaluate methods on a labelled sample; tune; compare saved runs. The command line is a thin
layer over these functions.

Nothing here writes to disk unless asked (an output file or folder), progress is shown only when a
`progress` callback is given, and every error a user can cause is a `sentiq.SentiqError`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiq.errors import OptionError
from sentiq.settings import (
    DEFAULT_PROMPT,
    EMBEDDED,
    ClassifySettings,
    DataSpec,
    EvalSettings,
    MethodConfig,
    ModelSettings,
    PromptTuneSettings,
    RaySettings,
    TuneSettings,
    method_names,
)

if TYPE_CHECKING:
    import pandas as pd

    from sentiq.core.engine import Engine
    from sentiq.methods.classifier import Classifier as MethodRunner
    from sentiq.workflows.classify import Summary
    from sentiq.workflows.compare import Comparison
    from sentiq.workflows.evaluate import RunResult
    from sentiq.workflows.tuning.choices import TuneResult

# Light to import (no torch, no pandas) until a function is called: `import sentiq` stays instant.
StartTask = Callable[[str, "int | None"], Callable[..., None]]  # (description, total) -> advance(texts, words, seconds)


def _quiet(description: str, total: int | None) -> Callable[..., None]:
    """No progress shown: the library's default."""
    return lambda n, words=0, seconds=0.0: None


def __getattr__(name: str) -> Any:
    """The result types, imported when first named (they bring pandas)."""
    where = {
        "Summary": "sentiq.workflows.classify",
        "Comparison": "sentiq.workflows.compare",
        "RunResult": "sentiq.workflows.evaluate",
    }
    if name not in where:
        raise AttributeError(f"module 'sentiq.api' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(where[name]), name)


Rows = Callable[[list[dict[str, Any]]], None]


def method_config(method: str | MethodConfig = "loglik", **options: Any) -> MethodConfig:
    """A method's settings from its name and keyword options (MethodConfig's fields); a misspelt option
    is named with the nearest one."""
    known = [f.name for f in fields(MethodConfig)]
    for name in options:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{near[0]}'?" if near else f" Options are: {', '.join(known[1:])}."
            raise OptionError(f"unknown method option '{name}'.{hint}")
    if isinstance(method, MethodConfig):
        return replace(method, **options)
    (name,) = method_names([method])
    return MethodConfig(method=name, **options)


def _model_settings(model: str | ModelSettings | None, *given: Any) -> ModelSettings:
    """Settings as given, or made from a model spec and device, dtype, batch_size, max_batch_tokens."""
    return model if isinstance(model, ModelSettings) else ModelSettings(model, *given)


def _tuned(methods: list[MethodConfig], model: str | None, tuned: bool, results_dir: str | Path) -> list[MethodConfig]:
    if not tuned:
        return methods
    from sentiq.workflows.tuning.choices import apply_tuned

    return apply_tuned(methods, model, Path(results_dir))


@dataclass
class Result:
    """One text's label. `p_positive`: the probability of 'positive' (label scores after calibration, or
    the share of positive votes when several answers were sampled; None for one generated answer)."""

    label: str  # 'positive', 'negative' or 'invalid' (a generated answer that names no label)
    p_positive: float | None
    answer: str | None  # the generated answer(s), for methods that generate
    truncated: bool  # the text was longer than max_tokens and lost its middle


class Classifier:
    """A model and a method, loaded once: `classify` texts, `classify_frame` a DataFrame. Made by
    `sentiq.load`. A calibration prior estimated on the first texts (`calibrate="batch"` or "domain")
    is kept for later calls, as one run of the command line keeps it."""

    def __init__(self, engine: Engine, method: MethodConfig) -> None:
        from sentiq.io.datasets import load_pool
        from sentiq.methods.classifier import Classifier as MethodRunner

        self.engine = engine
        self.method = method
        pool = load_pool() if method.method == "k-shot" else None  # the embedded IMDB demonstrations
        self._runner: MethodRunner = MethodRunner(engine, method, pool=pool)
        self._runner.warm_up()

    def __repr__(self) -> str:
        lm = self.engine.lm
        dtype = str(lm.dtype).removeprefix("torch.")
        return f"<sentiq.Classifier {lm.source.label} · {self.method.title()} on {lm.device} {dtype}>"

    def classify(self, texts: str | Iterable[str]) -> list[Result]:
        """Label each text (a single string is one text). Empty texts are 'invalid': they have no
        sentiment to find."""
        from sentiq.text import clean_text

        items = [texts] if isinstance(texts, str) else list(texts)
        filled = [i for i, t in enumerate(items) if clean_text(str(t))]
        results = [Result("invalid", None, None, False) for _ in items]
        for i, p in zip(filled, self._runner.predict([str(items[i]) for i in filled])):
            results[i] = Result(p.label, p.p_positive, p.answer, p.truncated)
        return results

    def classify_frame(self, df: pd.DataFrame, text_column: str = "text") -> pd.DataFrame:
        """`df` with columns label, p_positive and answer added (its index kept)."""
        from sentiq.errors import DataError

        if text_column not in df.columns:
            columns = ", ".join(map(str, df.columns))
            raise DataError(f"no column '{text_column}'; columns are: {columns} (choose with text_column=)")
        results = self.classify(df[text_column].fillna("").astype(str))
        return df.assign(
            label=[r.label for r in results],
            p_positive=[r.p_positive for r in results],
            answer=[r.answer for r in results],
        )


def load(
    model: str | None = None,
    method: str = "loglik",
    *,
    prompt: str = DEFAULT_PROMPT,
    tuned: bool = False,
    results_dir: str | Path = "results",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    **options: Any,
) -> Classifier:
    """Load a model and bind a method to it.

    model: '0.5b' or '1.5b' (Qwen2.5 Instruct), a hub id, a local model folder or a .gguf file (None:
    SENTIQ_MODEL, else 1.5b). method: 'loglik', 'zero-shot', 'k-shot' or 'sampling'. prompt: a built-in
    prompt, NAME:VARIANT, a .toml file, or several comma-separated. tuned: use what `tune_prompt` (and
    `tune_sampling`) chose for this model under results_dir. device: auto, cuda, mps or cpu; dtype: auto,
    bfloat16, float16 or float32. options: the method's other settings, as the command line's options
    (calibrate, k, scoring, temperature, top_k, top_p, samples, max_new_tokens, max_tokens, tail, seed)."""
    from sentiq.core.engine import load_engine

    settings = ModelSettings(model, device, dtype, batch_size, max_batch_tokens)
    (config,) = _tuned([method_config(method, prompt=prompt, **options)], model, tuned, results_dir)
    return Classifier(load_engine(settings), config)


def classify_file(
    input: str | Path | Sequence[tuple[str, str]],
    output: str | Path | None = None,
    classifier: Classifier | None = None,
    *,
    model: str | ModelSettings | None = None,
    method: str | MethodConfig = "loglik",
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
    `input` may also be (id, text) pairs. With `classifier` its model and method are used; otherwise
    `model` and `method` are loaded once the input and output have been checked. `on_rows` receives each
    batch's rows; `scale=RaySettings(backend="ray", ...)` runs on a Ray cluster (file to folder); `engine`: a
    model already loaded, for `model` and `method`."""
    from sentiq.workflows.classify import classify, classify_on_ray, make_source

    settings = ClassifySettings(
        Path(output) if output is not None else None, text_column, keep_columns, chunk_size, resume, overwrite
    )
    model_settings = _model_settings(model if classifier is None else classifier.engine.lm.source.ref, device, dtype)
    config = method_config(method) if classifier is None else classifier.method
    tuned_in = Path(results_dir) if tuned else None
    if scale is not None and scale.backend == "ray":
        if isinstance(input, str | Path):
            return classify_on_ray(Path(input), settings, model_settings, config, scale, tuned_in)
        raise OptionError("--engine ray labels an --input file or folder into an --output (a folder of files)")
    items = [] if isinstance(input, str | Path) else list(input)
    path = Path(input) if isinstance(input, str | Path) else None
    source = make_source(items, path, settings)
    engine = classifier.engine if classifier is not None else engine
    return classify(source, settings, model_settings, config, progress or _quiet, on_rows, tuned_in, engine)


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

    def save(self, folder: str | Path = "results") -> list[Path]:
        """Write each run as a run folder under `folder` (config.json, predictions.csv, metrics, the
        confusion matrix), as `sentiq evaluate` leaves them; their paths."""
        return [r.save(Path(folder)) for r in self.runs]


def evaluate(
    model: str | ModelSettings | None = None,
    methods: str | MethodConfig | Sequence[str | MethodConfig] = "loglik",
    *,
    dataset: str | DataSpec = EMBEDDED,
    n: int | None = EvalSettings.n,
    seed: int = 0,
    text_column: str | None = None,
    label_column: str = DataSpec.label_column,
    label_map: str | None = None,
    tuned: bool = False,
    results_dir: str | Path = "results",
    output_dir: str | Path | None = None,
    run_id: str | None = None,
    resume: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    scale: RaySettings | None = None,
    progress: StartTask | None = None,
    engine: Engine | None = None,
    **options: Any,
) -> Evaluation:
    """Measure methods on one balanced labelled sample of `n` texts (None: all).

    dataset: 'imdb-sample' (embedded), a .csv/.tsv/.jsonl/.json/.parquet file, or a hub dataset id;
    text_column, label_column and label_map say how to read it ('1=positive,0=negative'). methods: names
    ('loglik', 'zero-shot', 'k-shot', 'sampling', 'all') or MethodConfig objects; options (prompt,
    calibrate, k, ...) apply to every method named. Kept in memory unless output_dir is given: then each
    method's run folder is written there as predictions arrive, and `resume=True` with the same `run_id`
    continues an interrupted one."""
    names = [methods] if isinstance(methods, str | MethodConfig) else list(methods)
    expanded = [m for name in names for m in ([name] if isinstance(name, MethodConfig) else method_names([name]))]
    configs = [method_config(m, **options) for m in expanded]
    model_settings = _model_settings(model, device, dtype, batch_size, max_batch_tokens)
    data = dataset if isinstance(dataset, DataSpec) else DataSpec(dataset, text_column, label_column, label_map)
    settings = EvalSettings(
        model=model_settings,
        data=data,
        methods=_tuned(configs, model_settings.model, tuned, results_dir),
        n=n,
        seed=seed,
        output_dir=Path(output_dir) if output_dir is not None else None,
        run_id=run_id,
        resume=resume,
        ray=scale or RaySettings(),
    )
    from sentiq.workflows.evaluate import evaluate as run_evaluate

    return Evaluation(run_evaluate(settings, progress or _quiet, engine))


def tune_prompt(
    model: str | ModelSettings | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    output_dir: str | Path = "results",
    progress: StartTask | None = None,
    **settings: Any,
) -> TuneResult:
    """Choose the prompt, label words, calibration and ending for a model by loglik accuracy on the
    embedded tuning reviews; saved under output_dir/tuning/<model>/, where `tuned=True` finds it.
    settings: PromptTuneSettings' fields (prompts, n, ensemble, tail, k, draws, max_tokens, seed)."""
    from sentiq.workflows.tuning.prompts import tune_prompt as search_prompts

    chosen = PromptTuneSettings(output_dir=Path(output_dir), **settings)
    return search_prompts(_model_settings(model, device, dtype), chosen, progress or _quiet)


def tune_sampling(
    model: str | ModelSettings | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    output_dir: str | Path = "results",
    progress: StartTask | None = None,
    **settings: Any,
) -> TuneResult:
    """Search temperature x top-k for the sampling method; saved where `tuned=True` finds it.
    settings: TuneSettings' fields (temperatures, top_ks, n, samples, prompt, seed)."""
    from sentiq.workflows.tuning.sampling import tune_sampling as search_sampling

    chosen = TuneSettings(output_dir=Path(output_dir), **settings)
    return search_sampling(_model_settings(model, device, dtype), chosen, progress or _quiet)


def compare(
    results_dir: str | Path = "results",
    metric: str = "macro_f1",
    *,
    write: bool = False,
    html: str | Path | None = None,
) -> Comparison:
    """Rank the complete runs under results_dir (`.table`, a DataFrame), with warnings and agreement.
    write: also save comparison.csv and comparison.png there; html: also write the HTML report."""
    from sentiq.workflows.compare import compare as rank

    root = Path(results_dir)
    result = rank(root, metric)
    if write:
        result.save(root)
    if html is not None:
        from sentiq.report.html import write_report

        write_report(Path(html), result, root, metric)
        result.files.append(Path(html))
    return result
