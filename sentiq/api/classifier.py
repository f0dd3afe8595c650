"""`sentiq.load` and the Classifier it returns: a model and a method loaded once, texts and DataFrames
labelled in memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from sentiq.api.options import method_config, model_settings, tuned_methods
from sentiq.choices import DEFAULT_PROMPT, Device, DType, Method
from sentiq.errors import OptionError, speaks_python
from sentiq.predictions import Surface
from sentiq.results import CalibrationRecord, Result
from sentiq.settings import MethodConfig, ModelSettings

if TYPE_CHECKING:
    import pandas as pd

    from sentiq.core.engine import Engine
    from sentiq.methods.runner import MethodRunner
    from sentiq.model_source import ModelSource


ADDED_PREFIX = "sentiq_"  # classify_frame's columns where the frame has columns of their names


class Classifier:
    """A model and a method, loaded once: `classify` texts, `classify_frame` a DataFrame. Made by
    `sentiq.load`. A calibration prior estimated on the first texts (`calibrate="batch"` or "domain")
    is kept for later calls, as one run of the command line keeps it."""

    def __init__(self, engine: Engine, method: MethodConfig) -> None:
        from sentiq.methods.plan import plan_method
        from sentiq.methods.runner import make_runner

        self.engine = engine
        self.method = method
        self.calibration: CalibrationRecord | None = None  # once estimated: the prior divided out, and on what
        self._runner: MethodRunner = make_runner(engine, plan_method(method))

    @classmethod
    def from_settings(cls, model: ModelSettings, method: MethodConfig) -> Classifier:
        """The model of `model` loaded and `method` bound to it (what `sentiq.load` and the service do)."""
        from sentiq.core.engine import load_engine

        return cls(load_engine(model), method)

    def __repr__(self) -> str:
        lm = self.engine.lm
        dtype = str(lm.dtype).removeprefix("torch.")
        return f"<sentiq.Classifier {self.source.label} · {self.method.title()} on {lm.device} {dtype}>"

    @speaks_python
    def classify(self, texts: str | Iterable[str | None]) -> list[Result]:
        """Label each text (a single string is one text). Empty and missing texts (None, NaN) are
        'invalid': they have no sentiment to find. Anything else that is not a string (bytes, a
        number, a mapping) is a TypeError naming its position: sentiq does not guess how to read it."""
        return self._classify(_texts(texts))

    def _classify(self, items: list[str | None]) -> list[Result]:
        return [Result(**fields) for fields in self._rendered(items, "result")]

    @speaks_python
    def fields(self, texts: str | Iterable[str | None], surface: Surface = "output") -> list[dict[str, Any]]:
        """Each text's prediction as `surface` renders it: "output" (what classify writes: label, the
        probabilities, answer), "labelled" (with tokens, truncated and the probabilities before
        calibration), "service" (the HTTP service's JSON) or "result" (a Result's fields)."""
        return self._rendered(_texts(texts), surface)

    def _rendered(self, items: list[str | None], surface: Surface) -> list[dict[str, Any]]:
        """The one way the classifier renders predictions: empty and missing texts are 'invalid'."""
        from sentiq.predictions import INVALID, Prediction, prediction_fields
        from sentiq.text import clean_text

        if surface not in get_args(Surface):
            raise OptionError(f"unknown surface {surface!r}: choose one of {', '.join(get_args(Surface))}")
        filled = [(i, t) for i, t in enumerate(items) if t is not None and clean_text(t)]
        predictions = [Prediction(INVALID, None) for _ in items]
        for (i, _), p in zip(filled, self._runner.predict([t for _, t in filled])):
            predictions[i] = p
        self.calibration = self._runner.calibration or self.calibration
        label_set, answers = self._runner.label_set, not self.method.scores_labels
        return [prediction_fields(p, label_set, surface, answers) for p in predictions]

    @property
    def source(self) -> ModelSource:
        """The weights this classifier runs: where they came from, and their short name (`.label`)."""
        return self.engine.lm.source

    @property
    def labels(self) -> tuple[str, ...]:
        """The label set of the classifier's prompt(s), in the order of its scores."""
        return self._runner.labels

    @property
    def abstention(self) -> dict[str, float | int] | None:
        """Where it abstains: the confidence below which a text is 'uncertain' and, for a target accuracy,
        the bound and coverage it was chosen for; None when it labels every text."""
        threshold = self._runner.plan.threshold
        return None if threshold is None else threshold.record()

    @speaks_python
    def classify_frame(self, df: pd.DataFrame, text_column: str = "text") -> pd.DataFrame:
        """A copy of `df` (its index and columns kept) with the labels added: label, the probabilities
        (p_positive for the binary labels, p_<label> for each label of another set) and, for a method
        that generates, answer. Where `df` already has a column of one of those names (a gold `label`,
        say), every added column is named with the prefix `sentiq_` instead, and the frame's own columns
        stay as they are. Missing texts are 'invalid'; a text that is not a string is a TypeError naming
        its row."""
        import pandas as pd

        from sentiq.errors import DataError

        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"classify_frame takes a pandas DataFrame, not {type(df).__name__} (use classify)")
        if text_column not in df.columns:
            columns = ", ".join(map(str, df.columns))
            raise DataError(f"no column '{text_column}'; columns are: {columns} (choose with text_column=)")
        rows = self._rendered(_texts(df[text_column], rows=df.index), "output")
        names = self._runner.label_set.surface_fields("output", answers=not self.method.scores_labels)
        added = {name: [row[name] for row in rows] for name in names}
        if any(name in df.columns for name in added):
            added = {f"{ADDED_PREFIX}{name}": values for name, values in added.items()}
            taken = next((name for name in added if name in df.columns), None)
            if taken is not None:
                raise DataError(f"the frame has columns '{taken[len(ADDED_PREFIX) :]}' and '{taken}': rename one")
        return df.assign(**added)


def held_model(model: str | ModelSettings | Classifier | None, *given: Any) -> tuple[ModelSettings, Engine | None]:
    """Model settings from a name, settings (device, dtype, batch_size, max_batch_tokens as `given`) or a
    Classifier, and, for a Classifier, the model it has loaded, reused rather than loaded again."""
    if isinstance(model, Classifier):
        return model_settings(model.source.ref, *given), model.engine
    return model_settings(model, *given), None


def _texts(texts: object, rows: Iterable[object] | None = None) -> list[str | None]:
    """The texts of a call, None where one is missing; `rows` name them in a message (positions else)."""
    import pandas as pd

    from sentiq.errors import DataError
    from sentiq.text import lone_surrogate

    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, Mapping)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a string or an iterable of strings, not {type(texts).__name__}")
    items = list(texts)
    names = list(rows) if rows is not None else range(len(items))
    where = (lambda name: f"row {name!r}") if rows is not None else (lambda name: f"text {name}")  # for errors
    out: list[str | None] = []
    for name, item in zip(names, items):
        if isinstance(item, str):
            if (at := lone_surrogate(item)) is not None:
                raise DataError(
                    f"{where(name)} holds a lone surrogate (\\u{ord(item[at]):04x}) at character {at}: not a character"
                )
            out.append(item)
        elif item is None or (pd.api.types.is_scalar(item) and pd.isna(item)):
            out.append(None)
        else:
            raise TypeError(
                f"{where(name)} is a {type(item).__name__}, not a string: convert it yourself (decode bytes)"
            )
    return out


@speaks_python
def load(
    model: str | None = None,
    method: Method | Literal["all"] = "loglik",
    *,
    prompt: str = DEFAULT_PROMPT,
    tuned: bool = False,
    results_dir: str | Path = "results",
    device: Device = "auto",
    dtype: DType = "auto",
    batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    **options: Any,
) -> Classifier:
    """Load a model and bind a method to it.

    model: '0.5b' or '1.5b' (Qwen2.5 Instruct), a hub id, a local model folder or a .gguf file (None:
    SENTIQ_MODEL, else 1.5b). method: 'loglik', 'zero-shot', 'k-shot', 'sampling', or 'probe' with
    fit= (a folder `sentiq.fit` wrote; calibrate='fitted' with fit= uses its calibration). prompt: a built-in
    prompt, NAME:VARIANT, a .toml file, or several comma-separated. tuned: use what `tune_prompt` (and
    `tune_sampling`) chose for this model under results_dir. device: auto, cuda, mps or cpu; dtype: auto,
    bfloat16, float16 or float32. options: the method's other settings, as the command line's options
    (calibrate, fit, k, scoring, temperature, top_k, top_p, samples, max_new_tokens, max_tokens, tail, seed)."""
    settings = ModelSettings(model, device, dtype, batch_size, max_batch_tokens)
    (config,) = tuned_methods([method_config(method, prompt=prompt, **options)], settings, tuned, results_dir)
    return Classifier.from_settings(settings, config)
