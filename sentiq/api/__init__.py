"""The library: load a classifier and label texts, lists or DataFrames; stream a file of any size into
labels; evaluate methods on a labelled sample; tune; fit on labelled texts and pick the texts worth labelling next;
compare saved runs. The command line is a thin
layer over these functions.

Nothing here writes to disk unless asked (an output file or folder), progress is shown only when a
`progress` callback is given, and every error a user can cause is a `sentiq.SentiqError`. Light to
import (no torch, no pandas) until a function is called: `import sentiq` stays instant."""

from __future__ import annotations

from sentiq.api.classifier import Classifier, load
from sentiq.api.learning import fit, suggest, tune_prompt, tune_sampling
from sentiq.api.measuring import Evaluation, compare, evaluate, resume_run
from sentiq.api.options import method_config
from sentiq.api.streaming import classify_file, classify_stream
from sentiq.progress import StartTask
from sentiq.results import (
    Comparison,
    FitResult,
    PromptChoice,
    Result,
    RunResult,
    SamplingChoice,
    Suggestions,
    Summary,
    TuneResult,
)

__all__ = [
    "Classifier",
    "Evaluation",
    "Result",
    "StartTask",
    "classify_file",
    "classify_stream",
    "Comparison",
    "FitResult",
    "PromptChoice",
    "RunResult",
    "SamplingChoice",
    "Suggestions",
    "Summary",
    "TuneResult",
    "compare",
    "evaluate",
    "fit",
    "load",
    "method_config",
    "resume_run",
    "suggest",
    "tune_prompt",
    "tune_sampling",
]
