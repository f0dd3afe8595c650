"""`evaluate --resume RUN_ID` alone: the settings a saved run began with, read back from its record."""

from __future__ import annotations

from pathlib import Path

from sentiq.errors import OptionError, RunError
from sentiq.io.runs import recorded_config, run_path, safe_name
from sentiq.settings import DataSpec, EvalSettings, MethodConfig, ModelSettings


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
    if any("tuned" in r for r in records) or first.get("engine", {}).get("name") == "ray":
        raise OptionError(
            f"run {run_id} used --tuned choices or --backend ray: resume it with the options it began with and --resume"
        )
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
        )
    except (KeyError, TypeError) as exc:
        raise RunError(f"run {run_id}'s config.json lacks its settings ({exc}): resume it with its options") from None
