"""`evaluate --resume RUN_ID`: the settings a saved run began with, read back from its record, and the
options given beside it laid over them (only a given option that differs from the record is a difference)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from sentiq.choices import method_names
from sentiq.errors import OptionError, RunError
from sentiq.io.names import run_path, safe_name
from sentiq.io.runs import recorded_config
from sentiq.settings import DataSpec, EvalSettings, MethodConfig, ModelSettings, RaySettings
from sentiq.text import did_you_mean

MODEL_OPTIONS = tuple(f.name for f in fields(ModelSettings))
DATA_OPTIONS = {"dataset": "source", "text_column": "text_column", "label_column": "label_column"}
DATA_OPTIONS |= {"label_map": "label_map", "split": "split"}
METHOD_OPTIONS = tuple(f.name for f in fields(MethodConfig) if f.name not in ("method", "seed"))
RAY_OPTIONS = tuple(f.name for f in fields(RaySettings))  # where it runs: Ray = local, so it may change
RESUME_OPTIONS = (*MODEL_OPTIONS, *DATA_OPTIONS, "methods", "n", "sample", "seed", *METHOD_OPTIONS, *RAY_OPTIONS)


def laid_over(recorded: EvalSettings, given: dict[str, Any]) -> EvalSettings:
    """The recorded settings with the options given (named as evaluate's) in their place. Another
    method is other work, refused here; every other difference is left for the run to name."""
    unknown = next((k for k in given if k not in RESUME_OPTIONS), None)
    if unknown is not None:
        hint = did_you_mean(unknown, list(RESUME_OPTIONS)) or f" Options are: {', '.join(RESUME_OPTIONS)}."
        raise OptionError(f"unknown resume option '{unknown}'.{hint}")
    names = [m.method for m in recorded.methods]
    asked = given.get("methods")
    asked = method_names([asked] if isinstance(asked, str) else list(asked)) if asked is not None else names
    if asked != names:
        raise OptionError(
            f"run {recorded.run_id} measured {', '.join(names)}, not {', '.join(asked)}: leave --method "
            "out to continue it, or start a new run"
        )
    model = replace(recorded.model, **{k: given[k] for k in MODEL_OPTIONS if k in given})
    data = replace(recorded.data, **{f: given[k] for k, f in DATA_OPTIONS.items() if k in given})
    seed = {"seed": given["seed"]} if "seed" in given else {}  # the sample's and each method's, as evaluate's --seed
    options = {k: given[k] for k in METHOD_OPTIONS if k in given} | seed
    methods = [replace(m, **options) for m in recorded.methods]
    top = {k: given[k] for k in ("n", "sample") if k in given}
    ray = replace(recorded.ray, **{k: given[k] for k in RAY_OPTIONS if k in given})
    return replace(recorded, model=model, data=data, methods=methods, ray=ray, **top, **seed)


def recorded_settings(output_dir: Path, run_id: str) -> EvalSettings:
    """The settings a saved run began with, read back from its config.json (or those of the runs that
    share RUN_ID, one per method), so that `--resume RUN_ID` alone continues it."""
    only = recorded_config(run_path(output_dir, run_id))
    if only is not None:
        records = [only]
    else:  # several methods: RUN_ID-<method>
        listed = sorted(output_dir.iterdir()) if output_dir.is_dir() else []
        others = [p for p in listed if p.name.startswith(f"{safe_name(run_id)}-")]
        found = (recorded_config(run_path(output_dir, p.name)) for p in others if p.is_dir())
        records = [r for r in found if r is not None and r.get("run_id") == f"{safe_name(run_id)}-{r.get('method')}"]
    if not records:
        raise RunError(f"no run {run_id} under {output_dir}: nothing to resume")
    first = records[0]
    if any("tuned" in r for r in records):
        raise OptionError(f"run {run_id} used --tuned choices: resume it with the options it began with and --resume")
    engine = first.get("engine")
    ray = RaySettings(backend="ray") if isinstance(engine, dict) and engine.get("name") == "ray" else RaySettings()
    try:
        methods = [MethodConfig(**r["method_settings"]) for r in records]
        return EvalSettings(
            model=ModelSettings(first["model"], dtype=first["dtype"], batch_size=first.get("batch_size")),
            data=DataSpec(**first["dataset"]),
            methods=methods,
            n=first["n"],
            seed=first["sample_seed"],
            sample=first.get("sample", "balanced"),
            output_dir=output_dir,
            run_id=run_id if len(records) > 1 or first["run_id"] == run_id else first["run_id"],
            resume=True,
            ray=ray,  # where it ran (on a cluster: the options given say which)
        )
    except (KeyError, TypeError) as exc:
        raise RunError(f"run {run_id}'s config.json lacks its settings ({exc}): resume it with its options") from None
