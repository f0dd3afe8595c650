"""The library's public vocabulary: what its functions return, in a leaf that imports nothing heavy
(pandas and numpy only as annotations), so that `sentiq.api` re-exports every result type plainly.
Behaviour that reads or writes files stays with the layers that own them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiq.predictions import RUN_FIELDS
from sentiq.searches import PromptChoice, SamplingChoice, TuneResult
from sentiq.settings import MethodConfig

if TYPE_CHECKING:
    import pandas as pd

__all__ = [  # the searches' results are part of the vocabulary too
    "CalibrationRecord",
    "Comparison",
    "FitResult",
    "PromptChoice",
    "Quality",
    "Result",
    "RunResult",
    "SamplingChoice",
    "Score",
    "Speed",
    "Summary",
    "TuneResult",
]

NESTED_MIN = 3  # of each label: the fewest for a nested score (two folds inside two of each in training)


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
    exit: int | None = None  # early exits: the layer whose probe labelled it
    exit_model: str | None = None  # a cascade across models: the model of that layer


@dataclass(frozen=True)
class CalibrationRecord:
    """How labels were calibrated without labels: the prior divided out of every text's scores (each
    label's mean probability; one per prompt where each prompt's first answer token is calibrated), and
    what it was estimated on. A run's config.json and a classify output's .calibration.json keep it."""

    mode: str  # batch, domain or contextual
    prior: dict[str, float] | list[dict[str, float]]
    estimated_on: str

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "prior": self.prior, "estimated_on": self.estimated_on}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> CalibrationRecord:
        """A record read back from JSON."""
        return cls(str(data["mode"]), data["prior"], str(data["estimated_on"]))


@dataclass(frozen=True)
class Summary:
    """What a classify run did, folded from its steps."""

    texts: int = 0  # labelled by this run
    skipped: int = 0  # already in the output (--resume)
    words: int = 0
    seconds: float = 0.0
    truncated: int = 0  # texts that lost their middle to --max-tokens
    uncertain: int = 0  # labelled 'uncertain' (abstention)
    exits: dict[str, int] = field(default_factory=dict)  # staged fits: texts that left at each exit (exit_name)
    empty: list[str] = field(default_factory=list)  # where the empty texts are: reported and skipped
    output: Path | None = None
    already_complete: bool = False  # --resume of a finished output that the input added nothing to
    calibration: CalibrationRecord | None = None  # the prior divided out, and what it was estimated on
    tuned: str | None = None  # what --tuned applied


@dataclass(frozen=True)
class Suggestions:
    """What `suggest` wrote: the file of texts to label, how many it holds, how many texts of the pool
    were candidates and how many it left out (the fit's own, empty, repeated)."""

    output: Path
    picked: int
    candidates: int
    left_out: int


# -- evaluate --------------------------------------------------------------------------------------


@dataclass
class Quality:
    n: int
    accuracy: float  # over all n texts; an invalid answer is a wrong answer
    macro_precision: float | None
    macro_recall: float | None  # macro-averaged recall: TweetEval's measure of three-way sentiment
    # (the macro averages are over the labels the gold sample holds; None when it holds one label: an
    # average over one label is that label's own figure, and would rank as if it were an average)
    macro_f1: float | None
    invalid: int
    coverage: float  # share of texts that got a valid label
    labels_in_sample: int = 0  # labels the gold sample holds: with one, a macro average is that label's alone
    per_label: dict[str, dict[str, float]] | None = None  # label -> precision, recall, f1, support
    # ordered labels (ratings): mean absolute error in steps and quadratic weighted kappa over the texts
    # with a valid answer; within one step over all texts (an invalid answer is not within one)
    mae: float | None = None
    within_one: float | None = None
    qwk: float | None = None
    # the binary labels' own figures, as metrics.json has always held them
    precision_positive: float | None = None
    recall_positive: float | None = None
    f1_positive: float | None = None
    precision_negative: float | None = None
    recall_negative: float | None = None
    f1_negative: float | None = None
    # how far the probabilities can be trusted (workflows.confidence), over the `scored` texts that have
    # one: top-label expected calibration error (15 bins), Brier score, log loss, AUROC (binary sets),
    # the area under the risk-coverage curve and the share answerable at 90/95/99% accuracy
    scored: int | None = None
    mean_confidence: float | None = None
    ece: float | None = None
    brier: float | None = None
    log_loss: float | None = None
    auroc: float | None = None
    aurc: float | None = None
    coverage_at_90: float | None = None
    coverage_at_95: float | None = None
    coverage_at_99: float | None = None
    # abstention (--min-confidence, --target-accuracy): the figures above are over every text, an
    # 'uncertain' one at the label it abstained from; these over the texts answered
    uncertain: int | None = None
    answered: float | None = None  # share of texts neither uncertain nor invalid
    selective_accuracy: float | None = None
    selective_accuracy_interval: list[float] | None = None  # Wilson 95%


@dataclass
class Speed:
    seconds: float  # inference wall time, model loading and warm-up excluded
    words: int
    tokens: int
    words_per_s: float
    tokens_per_s: float
    latency_p50_ms: float  # per text, its batch's time shared among the batch's texts
    latency_p95_ms: float
    # staged fits: each exit's share of the texts (keyed by exit_name), and the first model's layers run
    # per text on average (a text handed to a second model ran all of them)
    exit_shares: dict[str, float] | None = None
    mean_layers: float | None = None


def as_row(q: Quality, s: Speed) -> dict[str, float | int]:
    return {**asdict(q), **asdict(s)}


def _no_predictions() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=list(RUN_FIELDS))


@dataclass
class RunResult:
    """One method's run: its metrics, its predictions (predictions.csv's columns) and, once written,
    its folder."""

    run_id: str
    folder: Path | None
    method: MethodConfig
    quality: Quality
    speed: Speed
    config: dict[str, Any] = field(default_factory=dict)
    truncated: int = 0  # texts that lost their middle to --max-tokens
    already_complete: bool = False  # resumed after it had finished: nothing was redone
    predictions: pd.DataFrame = field(default_factory=_no_predictions)  # predictions.csv's columns

    @property
    def prompt_name(self) -> str:
        """The prompt the run used, by name ('a,b' for an ensemble)."""
        return prompt_name(self.config)

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json's figures."""
        return {**as_row(self.quality, self.speed), "truncated": self.truncated}


def prompt_name(config: dict[str, Any]) -> str:
    """The prompt a run used, by name ('a,b' for an ensemble); runs that did not record it show '-'."""
    prompts = config.get("prompts")
    return ",".join(p["ref"] for p in prompts) if prompts else "-"


# -- fit -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """How well a fit does on texts it did not see, by cross-validation over the training texts (each
    text predicted by a model fitted, its regularization chosen too, without it)."""

    C: float  # the regularization chosen on all the texts
    folds: int
    n: int
    accuracy: float
    macro_recall: float
    curve: list[tuple[int, float]] = field(default_factory=list)  # (training texts, cross-validated macro recall)
    nested: bool = True  # False: too few texts of a label (< NESTED_MIN) to choose C inside each fold

    def note(self) -> str | None:
        """A sentence on how far the score can be trusted, when it is not a nested one."""
        if self.nested:
            return None
        return (
            f"C was chosen on all {self.n} texts, so the cross-validated score is a little optimistic "
            f"(a nested score needs {NESTED_MIN} texts of each label)"
        )


@dataclass
class FitResult:
    """A fit written: where, its card, and how each regression scored by cross-validation."""

    folder: Path
    card: dict[str, Any]
    calibration: Score
    probe: Score
    seconds: float  # the model's pass over the texts, loading excluded

    @property
    def name(self) -> str:
        return self.card["name"]


# -- compare ---------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Saved runs ranked: the table, what to read with care, how often runs agree, and what was written."""

    table: pd.DataFrame  # one row per run, ranked
    warnings: list[str] = field(default_factory=list)
    agreement: dict[str, pd.DataFrame] = field(default_factory=dict)  # sample description -> method x method
    files: list[Path] = field(default_factory=list)  # what was written

    def named(self, matrix: pd.DataFrame) -> pd.DataFrame:
        """An agreement matrix with runs named as the table numbers its rows (see named)."""
        return named(matrix, self.table)

    def as_json(self) -> dict[str, object]:
        import json

        return {
            "runs": json.loads(self.table.to_json(orient="records")),
            "warnings": self.warnings,
            "agreement": {k: json.loads(v.to_json()) for k, v in self.agreement.items()},
        }


def named(matrix: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """An agreement matrix with runs named as the comparison table numbers its rows: rows '#1 model
    method', columns '#1' (tied runs share a rank but not a row)."""
    number = {run_id: i + 1 for i, run_id in enumerate(table["run_id"])}
    rows = table.set_index("run_id")
    return matrix.set_axis(
        [f"#{number[r]} {rows.at[r, 'model']} {rows.at[r, 'method_name']}" for r in matrix.index], axis=0
    ).set_axis([f"#{number[r]}" for r in matrix.columns], axis=1)
