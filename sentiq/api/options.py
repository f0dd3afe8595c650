"""What every API function shares: method settings from names and keywords, model settings from a
spec or a dataset and label map from theirs, --tuned's choices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from sentiq.choices import Method, method_names
from sentiq.errors import OptionError
from sentiq.settings import DataSpec, MethodConfig, ModelSettings
from sentiq.text import did_you_mean

LabelMap = str | Mapping[str | int, str] | None  # '1=positive,0=negative', or {1: "positive", 0: "negative"}


def check_options(
    cls: type, options: dict[str, Any], what: str, fixed: tuple[str, ...] = (), also: tuple[str, ...] = ()
) -> None:
    """Keyword options that are fields of the settings class `cls` (less those the call sets itself; with
    the call's own keywords `also`, for the hint); a misspelt one is named with the nearest one."""
    known = [f.name for f in fields(cls) if f.name not in fixed] + list(also)
    for name in options:
        if name not in known:
            hint = did_you_mean(name, known) or f" Options are: {', '.join(known)}."
            raise OptionError(f"unknown {what} option '{name}'.{hint}")


def method_config(method: Method | MethodConfig = "loglik", **options: Any) -> MethodConfig:
    """A method's settings from its name and keyword options (MethodConfig's fields)."""
    check_options(MethodConfig, options, "method", fixed=("method",))
    if isinstance(method, MethodConfig):
        return replace(method, **options)
    (name,) = method_names([method])
    return MethodConfig(method=name, **options)


def method_configs(names: list[str | MethodConfig], **options: Any) -> list[MethodConfig]:
    """Each named method with the same options; when several are named, a `fit` (and a target accuracy,
    chosen on it) goes to those that read it (probe, and calibrate="fitted"), and a probe is not asked to
    calibrate what the fit made: `--method loglik,probe --calibrate fitted --fit FIT` measures both."""
    probe = lambda m: getattr(m, "method", m) == "probe"  # noqa: E731
    reads = lambda m: probe(m) or options.get("calibrate") == "fitted"  # noqa: E731
    if len(names) > 1 and options.get("fit") is not None and any(map(reads, names)):
        fitted = ("fit", "target_accuracy")
        made = []
        for m in names:
            own = {k: options.get(k) if reads(m) else None for k in fitted}
            own["max_loss"] = options.get("max_loss") if probe(m) else None  # a staged fit's: the probe's
            if probe(m) and options.get("calibrate") == "fitted":
                own["calibrate"] = "none"
            made.append(method_config(m, **{**options, **own}))
        return made
    return [method_config(m, **options) for m in names]


def model_settings(model: str | ModelSettings | None, *given: Any) -> ModelSettings:
    """Settings as given, or made from a model spec and device, dtype, batch_size, max_batch_tokens."""
    return model if isinstance(model, ModelSettings) else ModelSettings(model, *given)


def tuned_methods(
    methods: list[MethodConfig], model: ModelSettings, tuned: bool, results_dir: str | Path
) -> list[MethodConfig]:
    """`--tuned`, applied here, once, for every entry point: the methods with the model's saved choices."""
    if not tuned:
        return methods
    fitted = next((m for m in methods if m.fit is not None), None)
    if fitted is not None:
        raise OptionError(
            f"--tuned applies a search's prompt and calibration, and --fit {fitted.fit} carries its own: give one"
        )
    from sentiq.workflows.tuning.choices import apply_tuned

    return apply_tuned(methods, model.source, Path(results_dir))


def check_method(method: MethodConfig, model: ModelSettings) -> None:
    """What can be refused before a model loads, refused now: the method's prompt files, demonstrations
    and fit, and a fit made on other local weights (the service checks this before it listens)."""
    from sentiq.methods.plan import plan_method

    source = model.source  # a model that is nowhere fails here
    plan = plan_method(method)
    if plan.fit is not None:
        plan.fit.check_source(source)


def builtin_prompts() -> list[str]:
    """The prompts sentiq ships, the default first."""
    from sentiq.methods.prompts import builtin_names

    return builtin_names()


def data_spec(
    dataset: str | Path | DataSpec, text_column: str | None, label_column: str, label_map: LabelMap
) -> DataSpec:
    if isinstance(dataset, DataSpec):
        return dataset
    if not isinstance(dataset, (str, Path)):
        raise TypeError(f"dataset must be a file path, a hub id or a DataSpec, not {type(dataset).__name__}")
    return DataSpec(str(dataset), text_column, label_column, label_map_text(label_map))


def label_map_text(label_map: LabelMap) -> str | None:
    """A label map as the command line writes it: a dict {source value: label} becomes 'value=label,...'."""
    if label_map is None or isinstance(label_map, str):
        return label_map
    if not isinstance(label_map, Mapping):
        raise TypeError(f"label_map must be a dict or a 'value=label,...' string, not {type(label_map).__name__}")
    for key, label in label_map.items():
        if not isinstance(key, (str, int)) or isinstance(key, bool) or not isinstance(label, str):
            raise TypeError(f"label_map maps source values (str or int) to label names (str), not {key!r}: {label!r}")
        if any(c in str(key) for c in ",="):
            raise OptionError(f"label_map value {str(key)!r} holds ',' or '=': such a value cannot be mapped")
    return ",".join(f"{key}={label}" for key, label in label_map.items())
