"""sentiq: sentiment classification with small instruction-tuned LLMs, no training.

The library's names come from `sentiq.api`, which imports no torch or pandas until a function runs, so
`import sentiq` stays light::

    import sentiq
    clf = sentiq.load("0.5b", method="loglik")
    clf.classify(["An absolute delight.", "A dull mess."])
"""

from __future__ import annotations

from sentiq.api import (
    Classifier,
    Comparison,
    Evaluation,
    Result,
    Summary,
    classify_file,
    classify_stream,
    compare,
    evaluate,
    fit,
    load,
    resume_run,
    suggest,
    tune_prompt,
    tune_sampling,
)
from sentiq.errors import DataError, ModelError, OptionError, RunError, SentiqError
from sentiq.version import __version__ as __version__

__all__ = [
    "Classifier",
    "Comparison",
    "Evaluation",
    "Result",
    "Summary",
    "classify_file",
    "classify_stream",
    "compare",
    "evaluate",
    "fit",
    "load",
    "resume_run",
    "suggest",
    "tune_prompt",
    "tune_sampling",
    "SentiqError",
    "DataError",
    "ModelError",
    "OptionError",
    "RunError",
]
