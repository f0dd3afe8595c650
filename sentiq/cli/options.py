"""Every command-line option, declared once: its flags, type and help here, its default from the
settings dataclass it fills (so the command line and the library cannot drift apart). A command names
the options it takes; `build` turns what was given into settings, by keyword."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from sentiq.errors import OptionError
from sentiq.methods.prompts import builtin_names
from sentiq.settings import DataSpec, EvalSettings, MethodConfig, ModelSettings, RaySettings, TuneSettings

MODEL_PANEL = "Model"
SCALE_PANEL = "Scale (Ray)"
METHOD_PANEL = "Method"
DATA_PANEL = "Data"
F = TypeVar("F", bound=Callable[..., Any])


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


class Calibration(str, Enum):
    none = "none"
    contextual = "contextual"
    domain = "domain"
    batch = "batch"


class EngineChoice(str, Enum):
    local = "local"
    ray = "ray"


class Scoring(str, Enum):
    generate = "generate"
    loglik = "loglik"


@dataclass(frozen=True)
class Opt:
    type: Any
    default: Any
    info: Any  # typer.Option(...) or typer.Argument(...)

    def parameter(self, name: str) -> inspect.Parameter:
        kind = inspect.Parameter.KEYWORD_ONLY
        return inspect.Parameter(name, kind, default=self.default, annotation=Annotated[self.type, self.info])


def of(cls: type, name: str, *decls: str, choices: type[Enum] | None = None, **option: Any) -> Opt:
    """An option whose default and type come from the settings class `cls` (`choices`: an Enum of
    the values a string setting accepts)."""
    spec = next(f for f in fields(cls) if f.name == name)
    default = spec.default if spec.default is not MISSING else spec.default_factory()  # type: ignore[misc]
    kind: Any = get_type_hints(cls)[name]
    if choices is not None:
        kind, default = choices, choices(default)
    return Opt(kind, default, typer.Option(*decls, **option))


def plain(kind: Any, default: Any, *decls: str, **option: Any) -> Opt:
    """An option that fills no settings class."""
    return Opt(kind, default, typer.Option(*decls, **option))


OPTIONS: dict[str, Opt] = {
    # -- model ---------------------------------------------------------------------------------------
    "model": of(
        ModelSettings,
        "model",
        "--model",
        "-m",
        envvar="SENTIQ_MODEL",
        help="0.5b, 1.5b (Qwen2.5 Instruct), a hub id, a local model folder or a .gguf file. \\[default: 1.5b]",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
    "device": of(
        ModelSettings, "device", choices=Device, help="auto: CUDA, then MPS, then CPU.", rich_help_panel=MODEL_PANEL
    ),
    "dtype": of(
        ModelSettings,
        "dtype",
        choices=Dtype,
        help="auto: bfloat16 where native, float16 on MPS, else float32.",
        rich_help_panel=MODEL_PANEL,
    ),
    "batch_size": of(
        ModelSettings,
        "batch_size",
        "--batch-size",
        min=1,
        help="Most texts per forward pass. \\[default: as many as the device's token budget holds]",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
    "max_batch_tokens": of(
        ModelSettings,
        "max_batch_tokens",
        "--batch-tokens",
        min=1,
        help="Token budget per forward pass (halved on GPU memory errors). \\[default: 65536 CUDA, 2048 CPU]",
        rich_help_panel=MODEL_PANEL,
        show_default=False,
    ),
    # -- method --------------------------------------------------------------------------------------
    "k": of(MethodConfig, "k", "--k", min=1, help="k-shot: demonstrations per class.", rich_help_panel=METHOD_PANEL),
    "scoring": of(
        MethodConfig,
        "scoring",
        choices=Scoring,
        help="k-shot: decide by greedy generation or label log-likelihood.",
        rich_help_panel=METHOD_PANEL,
    ),
    "prompt": of(
        MethodConfig,
        "prompt",
        "--prompt",
        "-p",
        help=f"A built-in prompt ({', '.join(builtin_names())}; NAME:VARIANT for other label words), "
        "a .toml prompt file, or several comma-separated (an ensemble).",
        rich_help_panel=METHOD_PANEL,
    ),
    "calibrate": of(
        MethodConfig,
        "calibrate",
        "--calibrate",
        choices=Calibration,
        help="Where label scores decide: divide out a label prior from content-free inputs (contextual), "
        "random in-domain words (domain) or the texts themselves (batch).",
        rich_help_panel=METHOD_PANEL,
    ),
    "temperature": of(MethodConfig, "temperature", help="sampling: temperature (> 0).", rich_help_panel=METHOD_PANEL),
    "top_k": of(
        MethodConfig,
        "top_k",
        "--top-k",
        min=1,
        help="sampling: keep the k most likely tokens.",
        rich_help_panel=METHOD_PANEL,
    ),
    "top_p": of(
        MethodConfig,
        "top_p",
        "--top-p",
        help="sampling: nucleus top-p (off unless given).",
        rich_help_panel=METHOD_PANEL,
    ),
    "samples": of(
        MethodConfig, "samples", min=1, help="sampling: answers per text, majority vote.", rich_help_panel=METHOD_PANEL
    ),
    "max_new_tokens": of(
        MethodConfig,
        "max_new_tokens",
        "--max-new-tokens",
        min=1,
        help="Generation methods: most tokens an answer may take.",
        rich_help_panel=METHOD_PANEL,
    ),
    "max_tokens": of(
        MethodConfig,
        "max_tokens",
        "--max-tokens",
        min=16,
        help="Longest text in tokens; longer ones lose their middle.",
        rich_help_panel=METHOD_PANEL,
    ),
    "tail": of(
        MethodConfig,
        "tail",
        min=0,
        help="Also read each text's last N words and average the label scores of the two views (reviews tend "
        "to end on their verdict; ~1.3x the tokens). 0: the whole text only.",
        rich_help_panel=METHOD_PANEL,
    ),
    "demo_seed": of(
        MethodConfig,
        "demo_seed",
        "--demo-seed",
        min=0,
        help="k-shot: draw the demonstrations with this seed. \\[default: --seed]",
        rich_help_panel=METHOD_PANEL,
        show_default=False,
    ),
    "seed": of(MethodConfig, "seed", help="Seed for the sample, demonstrations and sampling."),
    "tuned": plain(
        bool,
        False,
        "--tuned",
        help="Use the prompt, calibration and ending tune-prompt chose for this model (and tune-sampling's setting "
        "for sampling).",
        rich_help_panel=METHOD_PANEL,
    ),
    # -- data ----------------------------------------------------------------------------------------
    "source": of(
        DataSpec,
        "source",
        "--dataset",
        help="imdb-sample (embedded), a .csv/.tsv/.jsonl/.json/.parquet file, or a hub dataset id.",
        rich_help_panel=DATA_PANEL,
    ),
    "text_column": of(
        DataSpec,
        "text_column",
        "--text-column",
        help="Column holding the text. \\[default: text]",
        rich_help_panel=DATA_PANEL,
        show_default=False,
    ),
    "label_column": of(DataSpec, "label_column", help="Column holding the label.", rich_help_panel=DATA_PANEL),
    "label_map": of(
        DataSpec,
        "label_map",
        help="How labels are encoded, e.g. '1=positive,0=negative'. \\[default: 1/0, pos/neg, positive/negative]",
        rich_help_panel=DATA_PANEL,
        show_default=False,
    ),
    "split": of(
        DataSpec,
        "split",
        help="Hub datasets: the split. \\[default: test]",
        rich_help_panel=DATA_PANEL,
        show_default=False,
    ),
    # -- scale ---------------------------------------------------------------------------------------
    "engine": of(
        RaySettings,
        "engine",
        choices=EngineChoice,
        help="local: this process; ray: a Ray cluster through Ray Data (pip install 'sentiq\\[ray]').",
        rich_help_panel=SCALE_PANEL,
    ),
    "ray_address": of(
        RaySettings,
        "ray_address",
        "--ray-address",
        help="The cluster to join. \\[default: RAY_ADDRESS, else a local cluster in this process]",
        rich_help_panel=SCALE_PANEL,
        show_default=False,
    ),
    "workers": of(
        RaySettings, "workers", min=1, help="Actors, each holding the model once.", rich_help_panel=SCALE_PANEL
    ),
    "gpus_per_worker": of(RaySettings, "gpus_per_worker", min=0, help="GPUs per actor.", rich_help_panel=SCALE_PANEL),
    "cpus_per_worker": of(
        RaySettings, "cpus_per_worker", help="CPUs per actor (its torch threads).", rich_help_panel=SCALE_PANEL
    ),
    "grow_timeout": of(
        RaySettings,
        "grow_timeout",
        "--grow-timeout",
        min=0,
        help="Seconds an autoscaling cluster may take to grow until the pool fits (a fixed one is refused at once).",
        rich_help_panel=SCALE_PANEL,
    ),
    # -- runs and output -----------------------------------------------------------------------------
    "output_dir": of(EvalSettings, "output_dir", "--output-dir", "-o", help="Where run folders are written."),
    "results_dir": plain(Path, Path("results"), "--results-dir", help="Where run folders are read from."),
    "json_out": plain(bool, False, "--json", help="Print machine-readable JSON only."),
}
MODEL = tuple(f.name for f in fields(ModelSettings))
METHOD = tuple(f.name for f in fields(MethodConfig) if f.name not in ("method", "seed"))
DATA = tuple(f.name for f in fields(DataSpec))
SCALE = tuple(f.name for f in fields(RaySettings))
TUNE_N = of(TuneSettings, "n", min=2, help="Tuning texts, balanced, from the 1,000 embedded tuning reviews.")
TUNE_SAMPLES = of(TuneSettings, "samples", min=1, help="Answers per text, majority vote.")


def takes(*names: str, **own: Opt) -> Callable[[F], F]:
    """Give a command the named shared options and its own ones, in that order, as its signature:
    Typer reads options from it, and the command receives them as keyword arguments."""

    def decorate(func: F) -> F:
        params = [OPTIONS[n].parameter(n) for n in names] + [opt.parameter(n) for n, opt in own.items()]
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return func

    return decorate


def build(cls: type, given: Mapping[str, Any], **extra: Any) -> Any:
    """Settings of `cls` from the options given (those that are its fields), enum choices as strings."""
    names = {f.name for f in fields(cls)}
    values = {k: v.value if isinstance(v, Enum) else v for k, v in given.items() if k in names}
    return cls(**{**values, **extra})


def parse_grid(text: str | None, kind: type, default: tuple, name: str) -> tuple:
    """'0.2,0.7' -> (0.2, 0.7); values are checked as the sampling method would check them."""
    if not text:
        return default
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise OptionError(f"{name}: '{text}' is not a comma-separated list of numbers") from exc
    bad = [v for v in values if (v <= 0 if kind is float else v < 1)]
    if not values or bad:
        raise OptionError(f"{name}: values must be {'above 0' if kind is float else 'at least 1'} (got {text})")
    return tuple(dict.fromkeys(values))
