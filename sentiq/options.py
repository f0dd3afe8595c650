"""Option types shared by the commands, defined once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

MODEL_PANEL = "Model"
METHOD_PANEL = "Method"
DATA_PANEL = "Data"


class Device(str, Enum):
    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class Dtype(str, Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float32 = "float32"


class Method(str, Enum):
    loglik = "loglik"
    zero_shot = "zero-shot"
    k_shot = "k-shot"
    sampling = "sampling"


class Scoring(str, Enum):
    generate = "generate"
    loglik = "loglik"


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="SENTIQ_MODEL",
        help="0.5b, 1.5b (Qwen2.5 Instruct), a hub id, a local model folder or a .gguf file. [default: 1.5b]",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
]
DeviceOpt = Annotated[Device, typer.Option(help="auto: CUDA, then MPS, then CPU.", rich_help_panel=MODEL_PANEL)]
DtypeOpt = Annotated[
    Dtype,
    typer.Option(help="auto: bfloat16 where native, float16 on MPS, else float32.", rich_help_panel=MODEL_PANEL),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        help="Most texts per forward pass. [default: as many as the device's token budget holds]",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
]
BatchTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-tokens",
        min=1,
        help="Token budget per forward pass (halved on GPU memory errors). [default: 65536 CUDA, 2048 CPU]",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for the sample, demonstrations and sampling.")]
KOpt = Annotated[
    int, typer.Option("--k", min=1, help="k-shot: demonstrations per class.", rich_help_panel=METHOD_PANEL)
]
ScoringOpt = Annotated[
    Scoring,
    typer.Option(help="k-shot: decide by greedy generation or label log-likelihood.", rich_help_panel=METHOD_PANEL),
]
CalibrateOpt = Annotated[
    bool,
    typer.Option(
        "--calibrate",
        help="Scoring methods: contextual calibration (content-free prior divided out).",
        rich_help_panel=METHOD_PANEL,
    ),
]
TemperatureOpt = Annotated[float, typer.Option(help="sampling: temperature (> 0).", rich_help_panel=METHOD_PANEL)]
TopKOpt = Annotated[
    int, typer.Option("--top-k", min=1, help="sampling: keep the k most likely tokens.", rich_help_panel=METHOD_PANEL)
]
TopPOpt = Annotated[
    float | None,
    typer.Option("--top-p", help="sampling: nucleus top-p (off unless given).", rich_help_panel=METHOD_PANEL),
]
SamplesOpt = Annotated[
    int, typer.Option(min=1, help="sampling: answers per text, majority vote.", rich_help_panel=METHOD_PANEL)
]
TunedOpt = Annotated[
    bool,
    typer.Option(
        "--tuned",
        help="sampling: use the best setting tune-sampling found for this model.",
        rich_help_panel=METHOD_PANEL,
    ),
]
MaxTokensOpt = Annotated[
    int, typer.Option(help="Longest text in tokens; longer ones lose their middle.", rich_help_panel=METHOD_PANEL)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
DatasetOpt = Annotated[
    str,
    typer.Option(
        help="imdb-sample (embedded), a .csv/.tsv/.jsonl/.json/.parquet file, or a hub dataset id.",
        rich_help_panel=DATA_PANEL,
    ),
]
TextColumnOpt = Annotated[
    str | None,
    typer.Option(help="Column holding the text. [default: text]", rich_help_panel=DATA_PANEL, show_default=False),
]
LabelColumnOpt = Annotated[str, typer.Option(help="Column holding the label.", rich_help_panel=DATA_PANEL)]
LabelMapOpt = Annotated[
    str | None,
    typer.Option(
        help="How labels are encoded, e.g. '1=positive,0=negative'. [default: 1/0, pos/neg, positive/negative]",
        rich_help_panel=DATA_PANEL,
        show_default=False,
    ),
]
SplitOpt = Annotated[
    str | None,
    typer.Option(help="Hub datasets: the split. [default: test]", rich_help_panel=DATA_PANEL, show_default=False),
]
OutputDirOpt = Annotated[Path, typer.Option("--output-dir", "-o", help="Where run folders are written.")]
ResultsDirOpt = Annotated[Path, typer.Option("--results-dir", help="Where run folders are read from.")]
