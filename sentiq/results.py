"""The library's public vocabulary: what its functions return, in a leaf that imports nothing heavy, so
that `sentiq.api` re-exports every result type plainly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


@dataclass(frozen=True)
class Summary:
    """What a classify run did, folded from its steps."""

    texts: int = 0  # labelled by this run
    skipped: int = 0  # already in the output (--resume)
    words: int = 0
    seconds: float = 0.0
    truncated: int = 0  # texts that lost their middle to --max-tokens
    empty: list[str] = field(default_factory=list)  # where the empty texts are: reported and skipped
    output: Path | None = None
    already_complete: bool = False  # --resume of a finished output that the input added nothing to
    calibration: dict[str, Any] | None = None  # the prior divided out, and what it was estimated on
    tuned: str | None = None  # what --tuned applied
