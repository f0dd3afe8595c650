"""sentiq: sentiment classification with small instruction-tuned LLMs, no training.

The library's names come from `sentiq.api`, loaded on first use, so `import sentiq` stays light (no torch
until a model loads)::

    import sentiq
    clf = sentiq.load("0.5b", method="loglik")
    clf.classify(["An absolute delight.", "A dull mess."])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

__all__ = [
    "Classifier",
    "Comparison",
    "DataError",
    "Evaluation",
    "ModelError",
    "OptionError",
    "Result",
    "RunError",
    "SentiqError",
    "Summary",
    "classify_file",
    "compare",
    "evaluate",
    "load",
    "tune_prompt",
    "tune_sampling",
]

if TYPE_CHECKING:
    from sentiq.api import (
        Classifier,
        Comparison,
        Evaluation,
        Result,
        Summary,
        classify_file,
        compare,
        evaluate,
        load,
        tune_prompt,
        tune_sampling,
    )
    from sentiq.errors import DataError, ModelError, OptionError, RunError, SentiqError


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'sentiq' has no attribute '{name}'")
    import importlib

    module = importlib.import_module("sentiq.errors" if name.endswith("Error") else "sentiq.api")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
