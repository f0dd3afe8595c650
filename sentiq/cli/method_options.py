"""The method's command-line options, declared once as `Annotated` types (as cli.options declares the
rest): how to classify, the prompt, calibration, sampling, demonstrations, --tuned."""

from __future__ import annotations

from typing import Annotated

from sentiq.api.options import builtin_prompts
from sentiq.choices import CALIBRATIONS, METHODS, SCORINGS
from sentiq.cli.options import METHOD_PANEL, choice, option


def _methods(value: str) -> list[str]:
    """`--method`: a method, 'all', or several comma-separated (the option may also be repeated)."""
    parse = choice([*METHODS, "all"])["parser"]
    return [parse(v.strip()) for v in str(value).split(",") if v.strip()]


# -- method -------------------------------------------------------------------------------------------
Method = Annotated[str, option("--method", **choice(METHODS), panel=METHOD_PANEL, help="How to classify.")]
MethodList = Annotated[
    list[str],
    option(
        "--method",
        parser=_methods,
        metavar="METHOD[,METHOD...]",
        panel=METHOD_PANEL,
        help=f"{', '.join(METHODS)} (with --fit) or all (but probe); repeat, or separate with commas, for several.",
    ),
]
K = Annotated[int, option("--k", min=1, panel=METHOD_PANEL, help="k-shot: demonstrations per class.")]
Scoring = Annotated[
    str,
    option(
        **choice(SCORINGS),
        panel=METHOD_PANEL,
        help="k-shot: decide by greedy generation or label log-likelihood.",
    ),
]
Prompt = Annotated[
    str,
    option(
        "--prompt",
        "-p",
        panel=METHOD_PANEL,
        help=f"A built-in prompt ({', '.join(builtin_prompts())}; NAME:VARIANT for other label words), "
        "a .toml prompt file, or several comma-separated (an ensemble).",
    ),
]
Calibrate = Annotated[
    str,
    option(
        "--calibrate",
        **choice(CALIBRATIONS),
        panel=METHOD_PANEL,
        help="Where label scores decide: divide out a label prior from content-free inputs (contextual), "
        "random in-domain words (domain) or the texts themselves (batch); or map them by a fit (fitted, with --fit).",
    ),
]
Temperature = Annotated[float, option(panel=METHOD_PANEL, help="sampling: temperature (> 0).")]
TopK = Annotated[
    int | None, option("--top-k", min=1, panel=METHOD_PANEL, help="sampling: keep the k most likely tokens.")
]
TopP = Annotated[
    float | None, option("--top-p", panel=METHOD_PANEL, help="sampling: nucleus top-p (off unless given).")
]
Samples = Annotated[int, option(min=1, panel=METHOD_PANEL, help="sampling: answers per text, majority vote.")]
MaxNewTokens = Annotated[
    int,
    option("--max-new-tokens", min=1, panel=METHOD_PANEL, help="Generation methods: most tokens an answer may take."),
]
MaxTokens = Annotated[
    int,
    option("--max-tokens", min=16, panel=METHOD_PANEL, help="Longest text in tokens; longer ones lose their middle."),
]
Tail = Annotated[
    int,
    option(
        min=0,
        panel=METHOD_PANEL,
        help="Also read each text's last N words and average the label scores of the two views (reviews tend "
        "to end on their verdict; ~1.3x the tokens). 0: the whole text only.",
    ),
]
DemoSeed = Annotated[
    int | None,
    option(
        "--demo-seed",
        min=0,
        panel=METHOD_PANEL,
        default_shown="--seed",
        help="k-shot: draw the demonstrations with this seed.",
    ),
]
Demos = Annotated[
    str | None,
    option(
        "--demos",
        panel=METHOD_PANEL,
        default_shown="the embedded IMDB pool",
        help="k-shot: a labelled table (.csv, .tsv, .jsonl, .json or .parquet) (text, label) to draw demonstrations from, "
        "in the prompt's labels; never the texts being classified.",
    ),
]
Tuned = Annotated[
    bool,
    option(
        "--tuned",
        panel=METHOD_PANEL,
        help="Use the prompt, calibration and ending tune-prompt chose for this model (and tune-sampling's "
        "setting for sampling).",
    ),
]
MinConfidence = Annotated[
    float | None,
    option(
        "--min-confidence",
        panel=METHOD_PANEL,
        help="Abstain: a text whose label is less probable than this (0-1) is labelled 'uncertain', its "
        "probabilities kept.",
    ),
]
TargetAccuracy = Annotated[
    float | None,
    option(
        "--target-accuracy",
        panel=METHOD_PANEL,
        help="Abstain so that the texts answered are at least this accurate with 95% confidence: the "
        "threshold is chosen on --fit's held-out predictions (probe or --calibrate fitted).",
    ),
]
MaxLoss = Annotated[
    float | None,
    option(
        "--max-loss",
        panel=METHOD_PANEL,
        help="With --method probe and a fit made with --exits or --then: choose its thresholds again on its held-out "
        "predictions, giving up at most this much accuracy (and macro recall) against its last stage (lower: more "
        "texts go on).",
    ),
]
