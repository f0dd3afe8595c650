"""Options several commands share, declared once. A command names a group as one parameter whose
default is the group (`model: ModelSettings = MODEL`); `grouped` puts the group's options in its place
on the command line and hands the command the one settings object they make. A new shared option is
written here, once."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from sentiq.cli import method_options as m
from sentiq.cli import options as o
from sentiq.settings import DataSpec, MethodConfig, ModelSettings, RaySettings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class OptionGroup:
    options: dict[str, tuple[Any, Any]]  # parameter name: (its Annotated type, its default)
    build: Callable[..., Any]  # the group's options, as keywords -> what the command receives

    def parameters(self) -> list[inspect.Parameter]:
        kind = inspect.Parameter.KEYWORD_ONLY
        return [inspect.Parameter(n, kind, default=d, annotation=t) for n, (t, d) in self.options.items()]


@dataclass(frozen=True)
class MethodOptions:
    """The method's options every command shares: all of MethodConfig but the method and the seed, which
    commands name and explain each their own way."""

    values: dict[str, Any]

    def config(self, method: str, seed: int) -> MethodConfig:
        return MethodConfig(method=method, seed=seed, **self.values)


FitPath = Annotated[
    str | None,
    o.option(
        "--fit",
        panel=o.METHOD_PANEL,
        help="probe and --calibrate fitted: the folder of a fit (`sentiq fit` writes it).",
    ),
]

MODEL = OptionGroup(
    {
        "model": (o.Model, ModelSettings.model),
        "device": (o.Device, ModelSettings.device),
        "dtype": (o.Dtype, ModelSettings.dtype),
        "batch_size": (o.BatchSize, ModelSettings.batch_size),
        "batch_tokens": (o.BatchTokens, ModelSettings.max_batch_tokens),
    },
    lambda model, device, dtype, batch_size, batch_tokens: ModelSettings(
        model, device, dtype, batch_size, batch_tokens
    ),
)
METHOD = OptionGroup(
    {
        "k": (m.K, MethodConfig.k),
        "scoring": (m.Scoring, MethodConfig.scoring),
        "prompt": (m.Prompt, MethodConfig.prompt),
        "calibrate": (m.Calibrate, MethodConfig.calibrate),
        "temperature": (m.Temperature, MethodConfig.temperature),
        "top_k": (m.TopK, MethodConfig.top_k),
        "top_p": (m.TopP, MethodConfig.top_p),
        "samples": (m.Samples, MethodConfig.samples),
        "max_new_tokens": (m.MaxNewTokens, MethodConfig.max_new_tokens),
        "max_tokens": (m.MaxTokens, MethodConfig.max_tokens),
        "tail": (m.Tail, MethodConfig.tail),
        "demo_seed": (m.DemoSeed, MethodConfig.demo_seed),
        "demos": (m.Demos, MethodConfig.demos),
        "fit": (FitPath, MethodConfig.fit),
        "min_confidence": (m.MinConfidence, MethodConfig.min_confidence),
        "target_accuracy": (m.TargetAccuracy, MethodConfig.target_accuracy),
        "max_loss": (m.MaxLoss, MethodConfig.max_loss),
    },
    lambda **values: MethodOptions(values),
)
TUNED = OptionGroup(
    {"tuned": (m.Tuned, False), "results_dir": (o.TunedIn, Path("results"))},
    lambda tuned, results_dir: {"tuned": tuned, "results_dir": results_dir},
)
RAY = OptionGroup(
    {
        "backend": (o.Backend, RaySettings.backend),
        "ray_address": (o.RayAddress, RaySettings.ray_address),
        "workers": (o.Workers, RaySettings.workers),
        "gpus_per_worker": (o.GpusPerWorker, RaySettings.gpus_per_worker),
        "cpus_per_worker": (o.CpusPerWorker, RaySettings.cpus_per_worker),
        "grow_timeout": (o.GrowTimeout, RaySettings.grow_timeout),
    },
    lambda **values: RaySettings(**values),
)


def data(dataset: Any) -> OptionGroup:
    """Where a labelled dataset is and how to read it, `dataset` being the command's own --dataset."""
    return OptionGroup(
        {
            "dataset": (dataset, DataSpec.source),
            "text_column": (o.TextColumn, DataSpec.text_column),
            "label_column": (o.LabelColumn, DataSpec.label_column),
            "label_map": (o.LabelMap, DataSpec.label_map),
            "split": (o.Split, DataSpec.split),
        },
        lambda dataset, text_column, label_column, label_map, split: DataSpec(
            dataset, text_column, label_column, label_map, split
        ),
    )


EVAL_DATA = data(o.Dataset)
TUNING_DATA = data(o.TuningDataset)


def grouped(command: F) -> F:
    """The command with each parameter whose default is an OptionGroup replaced by the group's options;
    called, it receives the object the group builds from them."""
    signature = inspect.signature(command, eval_str=True)
    groups = {n: p.default for n, p in signature.parameters.items() if isinstance(p.default, OptionGroup)}
    shown: list[inspect.Parameter] = []
    for name, p in signature.parameters.items():
        if name in groups:
            shown += groups[name].parameters()
        else:
            shown.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def run(**given: Any) -> Any:
        for name, group in groups.items():
            given[name] = group.build(**{option: given.pop(option) for option in group.options})
        return command(**given)

    run.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in shown}
    return run  # type: ignore[return-value]
