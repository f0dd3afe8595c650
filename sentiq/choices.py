"""The closed sets of choices a user picks from, as Literal types (the tuples beside them are their
values, for help and checks), and the defaults every surface shares. Light to import."""

from __future__ import annotations

from typing import Literal, get_args

from sentiq.errors import OptionError
from sentiq.text import did_you_mean

Method = Literal["loglik", "zero-shot", "k-shot", "sampling", "probe"]  # probe: a fit on the answer state (--fit)
# none; contextual: content-free inputs (Zhao et al. 2021); domain: random in-domain words (Fei et al.
# 2023); batch: the mean label probability over the texts themselves (Zhou et al. 2023); fitted: a logistic
# regression on the label log-probabilities, fitted on labelled texts (sentiq fit, --fit)
Calibration = Literal["none", "contextual", "domain", "batch", "fitted"]
Scoring = Literal["generate", "loglik"]  # k-shot: decide by greedy generation, or by label log-likelihood
SampleRule = Literal["balanced", "stratified"]  # as many texts of every label, or the data's own proportions
Device = Literal["auto", "cuda", "mps", "cpu"]  # auto: CUDA, then MPS, then CPU
DType = Literal["auto", "bfloat16", "float16", "float32"]  # auto: bfloat16 where native, float16 on MPS, else float32
Backend = Literal["local", "ray"]  # --backend: where the work runs, this process or a Ray cluster
Metric = Literal["macro_f1", "accuracy", "words_per_s"]  # what compare ranks by

METHODS: tuple[Method, ...] = get_args(Method)
PROMPTING: tuple[Method, ...] = METHODS[:4]  # what --method all runs: the methods that need no fit
CALIBRATIONS: tuple[Calibration, ...] = get_args(Calibration)
PRIORS: tuple[Calibration, ...] = CALIBRATIONS[:4]  # the calibrations that divide out a prior (a search's cells)
SCORINGS: tuple[Scoring, ...] = get_args(Scoring)
SAMPLINGS: tuple[SampleRule, ...] = get_args(SampleRule)
DEVICES: tuple[Device, ...] = get_args(Device)
DTYPES: tuple[DType, ...] = get_args(DType)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
METRICS: tuple[Metric, ...] = get_args(Metric)

# Tokens per forward pass by device: large on GPUs (memory errors halve it), small on CPUs (no gain past it).
TOKEN_BUDGETS = {"cuda": 65536, "mps": 8192, "cpu": 2048}
DEFAULT_PROMPT = "classifier"
EMBEDDED = "imdb-sample"
# The original study's sampling grid, plus small top-k values: with a two-word answer space, top-k
# below 10 is where sampling actually changes.
TEMPERATURES = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
TOP_KS = (1000, 800, 600, 400, 200, 100, 10, 5, 2)


def method_names(asked: list[str]) -> list[Method]:
    """`--method` values as method names: 'all' for every method, repeats dropped, typos named."""
    names = list(PROMPTING) if "all" in asked else list(dict.fromkeys(asked))
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        hint = did_you_mean(unknown[0], [*METHODS, "all"])
        raise OptionError(f"unknown method '{unknown[0]}': choose from {', '.join(METHODS)} or all.{hint}")
    return names  # type: ignore[return-value]


def ending_name(tail: int) -> str:
    """How method titles and tuning grids say that each text's last `tail` words are read too."""
    return f"+last {tail} words"
