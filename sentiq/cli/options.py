"""Every command-line option, declared once as an `Annotated` type: its flags, help and choices here, its
default in the command's signature, taken from the settings dataclass it fills (so the command line and
the library cannot drift apart). Choices come from the lists in `settings`; a bad one is named with the
nearest good one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from sentiq.choices import (
    BACKENDS,
    DEVICES,
    DTYPES,
    SAMPLINGS,
    TOKEN_BUDGETS,
)
from sentiq.model_source import DEFAULT_MODEL
from sentiq.text import did_you_mean

MODEL_PANEL = "Model"
METHOD_PANEL = "Method"
DATA_PANEL = "Data"
SCALE_PANEL = "Scale (Ray)"
IO_PANEL = "Input and output"


def choice(values: Sequence[str]) -> Any:
    """A parser for one of `values`, a bad value named with the nearest good one (as every other bad
    value is), and the metavar that lists them in help."""

    def parse(value: str) -> str:
        if value in values:
            return value
        raise ValueError(f"'{value}' is not one of {', '.join(values)}.{did_you_mean(str(value), values)}")

    return {"parser": parse, "metavar": "[" + "|".join(values) + "]"}


def option(*decls: str, panel: str | None = None, default_shown: str | None = None, **kwargs: Any) -> Any:
    """A typer.Option; `default_shown` is what help says the default is when the code's default is None."""
    if default_shown is not None:
        kwargs["help"] = f"{kwargs['help']} \\[default: {default_shown}]"
        kwargs["show_default"] = False
    return typer.Option(*decls, rich_help_panel=panel, **kwargs)


def _budgets() -> str:
    return ", ".join(
        f"{tokens} {device.upper() if device != 'cpu' else 'CPU'}" for device, tokens in TOKEN_BUDGETS.items()
    )


# -- model --------------------------------------------------------------------------------------------
Model = Annotated[
    str | None,
    option(
        "--model",
        "-m",
        envvar="SENTIQ_MODEL",
        panel=MODEL_PANEL,
        default_shown=DEFAULT_MODEL,
        help="0.5b, 1.5b (Qwen2.5 Instruct), a hub id, a local model folder or a .gguf file.",
    ),
]
Device = Annotated[str, option(**choice(DEVICES), panel=MODEL_PANEL, help="auto: CUDA, then MPS, then CPU.")]
Dtype = Annotated[
    str,
    option(**choice(DTYPES), panel=MODEL_PANEL, help="auto: bfloat16 where native, float16 on MPS, else float32."),
]
BatchSize = Annotated[
    int | None,
    option(
        "--batch-size",
        min=1,
        panel=MODEL_PANEL,
        default_shown="as many as the token budget holds",
        help="Most texts per forward pass.",
    ),
]
BatchTokens = Annotated[
    int | None,
    option(
        "--batch-tokens",
        min=1,
        panel=MODEL_PANEL,
        default_shown=_budgets(),
        help="Token budget per forward pass (halved on GPU memory errors).",
    ),
]

# -- data ---------------------------------------------------------------------------------------------
Dataset = Annotated[
    str,
    option(
        "--dataset",
        panel=DATA_PANEL,
        help="imdb-sample (embedded), a table (.csv, .tsv, .jsonl, .json or .parquet), or a hub dataset id.",
    ),
]
TextColumn = Annotated[
    str | None, option("--text-column", panel=DATA_PANEL, default_shown="text", help="Column holding the text.")
]
LabelColumn = Annotated[str, option(panel=DATA_PANEL, help="Column holding the label.")]
LabelMap = Annotated[
    str | None,
    option(
        panel=DATA_PANEL,
        default_shown="1/0, pos/neg, positive/negative",
        help="How labels are encoded, e.g. '1=positive,0=negative'.",
    ),
]
Split = Annotated[str | None, option(panel=DATA_PANEL, default_shown="test", help="Hub datasets: the split.")]
Sample = Annotated[
    str,
    option(
        **choice(SAMPLINGS),
        panel=DATA_PANEL,
        help="balanced: as many texts of every label; stratified: the data's own proportions of them.",
    ),
]
TuningTexts = Annotated[
    int,
    option(
        "--n",
        min=2,
        panel=DATA_PANEL,
        help="Tuning texts, drawn with --seed by --sample from --dataset (the same --seed draws the same texts).",
    ),
]
TuningDataset = Annotated[
    str,
    option(
        "--dataset",
        panel=DATA_PANEL,
        help="The texts to tune on: imdb-sample (its 1,000 embedded tuning reviews), or labelled texts of your own "
        "(a table (.csv, .tsv, .jsonl, .json or .parquet) or a hub dataset id) in any label set; evaluate --tuned leaves "
        "the texts tuned on out.",
    ),
]

# -- scale --------------------------------------------------------------------------------------------
Backend = Annotated[
    str,
    option(
        "--backend",
        "--engine",  # its name before 0.4
        **choice(BACKENDS),
        panel=SCALE_PANEL,
        help="local: this process; ray: a Ray cluster through Ray Data (pip install 'sentiq\\[ray]').",
    ),
]
RayAddress = Annotated[
    str | None,
    option(
        "--ray-address",
        panel=SCALE_PANEL,
        default_shown="RAY_ADDRESS, else a local cluster in this process",
        help="The cluster to join.",
    ),
]
Workers = Annotated[int, option(min=1, panel=SCALE_PANEL, help="Actors, each holding the model once.")]
GpusPerWorker = Annotated[float, option(min=0, panel=SCALE_PANEL, help="GPUs per actor.")]
CpusPerWorker = Annotated[float, option(panel=SCALE_PANEL, help="CPUs per actor (its torch threads).")]
GrowTimeout = Annotated[
    float,
    option(
        "--grow-timeout",
        min=0,
        panel=SCALE_PANEL,
        help="Seconds an autoscaling cluster may take to grow until the pool fits (a fixed one is refused at once).",
    ),
]

# -- runs and output ----------------------------------------------------------------------------------
Seed = Annotated[int, option(help="Seed for the sample, demonstrations and sampling.")]
MethodSeed = Annotated[int, option("--seed", panel=METHOD_PANEL, help="Seed for the demonstrations and sampling.")]
TuningSeed = Annotated[int, option("--seed", help="Seed for the tuning sample (and demonstrations, sampling).")]
OutputDir = Annotated[
    Path, option("--output-dir", "-o", help="Where run folders are written (and --tuned finds tuning choices).")
]
TuningDir = Annotated[Path, option("--output-dir", "-o", help="Where the choice is saved, for --tuned to find.")]
TunedIn = Annotated[Path, option("--results-dir", panel=METHOD_PANEL, help="Where --tuned finds the tuning choices.")]
ResultsDir = Annotated[Path, option("--results-dir", help="Where the saved runs are.")]
Json = Annotated[bool, option("--json", panel=IO_PANEL, help="Print machine-readable JSON only.")]
