"""`sentiq.load` and the Classifier it returns: a model and a method loaded once, texts and DataFrames
labelled in memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiq.api.options import method_config, tuned_methods
from sentiq.settings import DEFAULT_PROMPT, MethodConfig, ModelSettings

if TYPE_CHECKING:
    import pandas as pd

    from sentiq.core.engine import Engine
    from sentiq.methods.classifier import Classifier as MethodRunner


@dataclass
class Result:
    """One text's label. `scores`: every label's probability (label scores after calibration, or each
    label's share of the votes when several answers were sampled; None for one generated answer);
    `p_positive` is positive's, for the binary labels."""

    label: str  # one of the prompt's labels, or 'invalid' (a generated answer that names no label)
    p_positive: float | None
    answer: str | None  # the generated answer(s), for methods that generate
    truncated: bool  # the text was longer than max_tokens and lost its middle
    scores: dict[str, float] | None = None


class Classifier:
    """A model and a method, loaded once: `classify` texts, `classify_frame` a DataFrame. Made by
    `sentiq.load`. A calibration prior estimated on the first texts (`calibrate="batch"` or "domain")
    is kept for later calls, as one run of the command line keeps it."""

    def __init__(self, engine: Engine, method: MethodConfig) -> None:
        from sentiq.io.datasets import pool_for
        from sentiq.methods.classifier import Classifier as MethodRunner
        from sentiq.methods.classifier import label_set
        from sentiq.methods.prompts import load_prompts

        self.engine = engine
        self.method = method
        self.calibration: dict[str, Any] | None = None  # once estimated: the prior divided out, and on what
        prompts = load_prompts(method.prompt)
        pool = pool_for(method, label_set(prompts))  # k-shot's demonstrations
        self._runner: MethodRunner = MethodRunner(engine, method, pool=pool, prompts=prompts)
        self._runner.on_prior = lambda record: setattr(self, "calibration", record)
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
            results[i] = Result(p.label, p.p_positive, p.answer, p.truncated, p.scores)
        return results

    @property
    def labels(self) -> tuple[str, ...]:
        """The label set of the classifier's prompt(s), in the order of its scores."""
        return self._runner.labels

    def classify_frame(self, df: pd.DataFrame, text_column: str = "text") -> pd.DataFrame:
        """`df` with columns label, the probabilities (p_positive for the binary labels, p_<label> for each
        label of another set) and answer added (its index kept)."""
        from sentiq.errors import DataError

        if text_column not in df.columns:
            columns = ", ".join(map(str, df.columns))
            raise DataError(f"no column '{text_column}'; columns are: {columns} (choose with text_column=)")
        from sentiq.predictions import output_fields

        results = self.classify(df[text_column].fillna("").astype(str))
        probs = output_fields(self.labels)[1:-1]
        scores = {
            f: [r.p_positive if f == "p_positive" else (r.scores or {}).get(f[2:]) for r in results] for f in probs
        }
        return df.assign(label=[r.label for r in results], **scores, answer=[r.answer for r in results])


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
    (config,) = tuned_methods([method_config(method, prompt=prompt, **options)], model, tuned, results_dir)
    return Classifier(load_engine(settings), config)
