"""The library: load a classifier and label texts, lists or DataFrames; stream a file of any size into
labels; evaluate methods on a labelled sample; tune; fit on labelled texts; compare saved runs. The command line is a thin
layer over these functions.

Nothing here writes to disk unless asked (an output file or folder), progress is shown only when a
`progress` callback is given, and every error a user can cause is a `sentiq.SentiqError`. Light to
import (no torch, no pandas) until a function is called: `import sentiq` stays instant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sentiq.api.classifier import Classifier, load
from sentiq.api.measuring import Evaluation, compare, evaluate, fit, resume_run, tune_prompt, tune_sampling
from sentiq.api.options import method_config
from sentiq.api.streaming import classify_file, classify_stream
from sentiq.progress import StartTask
from sentiq.results import Result, Summary

if TYPE_CHECKING:  # the result types, for annotations; at run time imported when first named (pandas)
    from sentiq.workflows.compare import Comparison as Comparison
    from sentiq.workflows.evaluate import RunResult as RunResult
    from sentiq.workflows.fitting import FitResult as FitResult
    from sentiq.workflows.tuning.choices import TuneResult as TuneResult
    from sentiq.workflows.tuning.records import PromptChoice as PromptChoice
    from sentiq.workflows.tuning.records import SamplingChoice as SamplingChoice

__all__ = [
    "Classifier",
    "Evaluation",
    "Result",
    "StartTask",
    "classify_file",
    "classify_stream",
    "Summary",
    "compare",
    "evaluate",
    "fit",
    "load",
    "method_config",
    "resume_run",
    "tune_prompt",
    "tune_sampling",
]


def __getattr__(name: str) -> Any:
    """The result types, imported when first named (they bring pandas)."""
    where = {
        "Comparison": "sentiq.workflows.compare",
        "RunResult": "sentiq.workflows.evaluate",
        "FitResult": "sentiq.workflows.fitting",
        "TuneResult": "sentiq.workflows.tuning.choices",
        "PromptChoice": "sentiq.workflows.tuning.records",
        "SamplingChoice": "sentiq.workflows.tuning.records",
    }
    if name not in where:
        raise AttributeError(f"module 'sentiq.api' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(where[name]), name)
