"""Ranking saved runs (models x methods) with accuracy intervals, ties where the intervals cannot tell
runs apart, the accuracy/speed Pareto front, a warning when runs were made on different samples, and
how often methods agree on the same reviews."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sentiq.choices import METRICS
from sentiq.errors import OptionError, RunError
from sentiq.io.files import write_frame
from sentiq.io.saved_runs import SavedRun, read_runs
from sentiq.results import Comparison, prompt_name
from sentiq.text import LABELS, plural
from sentiq.workflows.metrics import wilson
from sentiq.workflows.plots import comparison_chart

TRUST_COLUMNS = ("ece", "brier", "log_loss", "auroc", "aurc", "coverage_at_95", "uncertain", "selective_accuracy")


def save_comparison(result: Comparison, root: Path) -> None:
    """comparison.csv and comparison.png (accuracy against words/s, a panel per label set and sample) in
    `root`, named in result.files."""
    write_frame(root / "comparison.csv", result.table)
    comparison_chart(root / "comparison.png", panels(result.table))
    result.files += [root / "comparison.csv", root / "comparison.png"]


def compare(root: Path, metric: str = "macro_f1") -> Comparison:
    """Rank every complete run under root by `metric` (ties: accuracy, then macro-F1). Writes nothing."""
    if metric not in METRICS:
        raise OptionError(f"unknown metric '{metric}': choose one of {', '.join(METRICS)}")
    runs, left_out = read_runs(root)
    if not runs:
        raise RunError(f"no complete runs under {root}: run 'sentiq evaluate' first (or pass --results-dir)")
    summaries = pd.DataFrame([_summary(r) for r in runs])
    tie = [c for c in ("accuracy", "macro_f1") if c != metric]
    groups = []  # runs are ranked among runs of their own label set, never a binary run against a three-way one
    for _, group in summaries.groupby("labels", sort=False):
        group = group.sort_values([metric, *tie], ascending=False, kind="stable").reset_index(drop=True)
        group.insert(0, "rank", tied_ranks(group) if metric != "words_per_s" else list(range(1, len(group) + 1)))
        groups.append(group)
    table = pd.concat(groups, ignore_index=True)
    table["pareto"] = False  # a front among runs whose accuracies can be compared: one label set, one sample
    for _, panel in panels(table):
        table.loc[panel.index, "pareto"] = pareto_front(panel)
    warnings = left_out + _sample_warnings(table) + _machine_warnings(table) + _label_set_note(table)
    return Comparison(table, warnings, _agreement(runs, table))


def panels(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The ranking's runs by label set and sample, each with a title: accuracies (and fronts) compare
    within a panel only."""
    return [
        (f"{labels.replace(',', ', ')} · {sample}", group)
        for (labels, sample), group in table.groupby(["labels", "sample"], sort=False)
    ]


def _label_set_note(table: pd.DataFrame) -> list[str]:
    sets = list(dict.fromkeys(table["labels"]))
    if len(sets) < 2:
        return []
    return [f"runs of {len(sets)} label sets ({'; '.join(sets)}) are ranked apart, each set in its own ranks"]


def tied_ranks(table: pd.DataFrame) -> list[int]:
    """1 + the number of runs whose accuracy interval lies wholly above this run's, never smaller than
    the rank of the run listed before it: runs the data cannot tell apart share a rank."""
    ranks: list[int] = []
    for row in table.itertuples():
        better = int((table["acc_low"] > row.acc_high).sum())
        ranks.append(max(ranks[-1] if ranks else 1, 1 + better))
    return ranks


def pareto_front(table: pd.DataFrame) -> list[bool]:
    """Runs no other run beats on both accuracy and words/s: the choices worth making."""
    acc, wps = table["accuracy"].to_numpy(), table["words_per_s"].to_numpy()
    return [
        not any(
            (acc[j] >= acc[i]) and (wps[j] >= wps[i]) and (acc[j] > acc[i] or wps[j] > wps[i]) for j in range(len(acc))
        )
        for i in range(len(acc))
    ]


def _summary(run: SavedRun) -> dict[str, object]:
    c, m = run.config, run.metrics
    low, high = wilson(round(m["accuracy"] * m["n"]), m["n"])
    return {
        "model": c.get("model_label", c.get("model")),
        "method": c.get("method_title", c.get("method")),
        "method_name": c.get("method"),
        "labels": ",".join(c.get("labels") or LABELS),
        "dataset": Path(str(c.get("dataset", {}).get("source"))).name,
        "prompt": prompt_name(c),
        "n": m["n"],
        "accuracy": m["accuracy"],
        "acc_low": low,
        "acc_high": high,
        "macro_f1": m["macro_f1"],
        "invalid": m["invalid"],
        **{k: m.get(k) for k in TRUST_COLUMNS},  # None in runs of earlier versions
        "words_per_s": m["words_per_s"],
        "latency_p50_ms": m.get("latency_p50_ms"),
        "latency_p95_ms": m.get("latency_p95_ms"),
        "run_id": run.run_id,
        "sample": _sample_key(c),
        "device": c.get("device"),
        "machine": machine_name(c),
    }


def machine_name(config: dict) -> str | None:
    """The hardware a run's words/s were measured on: its GPU, or its CPU model with the flags that decide
    matmul speed; None for runs that did not record it."""
    machine = config.get("machine") or {}
    if not isinstance(machine, dict) or not (machine.get("gpu") or machine.get("cpu")):
        return None
    device = str(config.get("device", ""))
    if machine.get("gpu") and device.startswith("cuda"):
        return str(machine["gpu"])
    flags = ",".join(machine.get("cpu_flags") or [])
    return f"{machine.get('cpu')} ({machine.get('cpus')} cores{', ' + flags if flags else ''})"


def _sample_key(config: dict) -> str:
    """The sample a run was made on: by its content where the run recorded it (the same file reached by
    two paths is one sample), else by source, size and seed."""
    data = config.get("dataset", {})
    source = Path(str(data.get("source"))).name
    digest = config.get("sample_digest")
    return f"{source} n={config.get('n')} " + (f"#{digest[:8]}" if digest else f"seed={config.get('sample_seed')}")


def _sample_warnings(table: pd.DataFrame) -> list[str]:
    samples = table.groupby("sample")["run_id"].count()
    if len(samples) <= 1:
        return []
    parts = "; ".join(f"{s} ({plural(k, 'run')})" for s, k in samples.items())
    return [f"runs were made on {len(samples)} different samples, so their scores are not directly comparable: {parts}"]


def _machine_warnings(table: pd.DataFrame) -> list[str]:
    """Words/s measured on different hardware do not compare: say so, and on which."""
    machines = table["machine"].dropna()
    if machines.nunique() <= 1:
        return []
    unknown = int(table["machine"].isna().sum())
    parts = "; ".join(f"{m} ({plural(k, 'run')})" for m, k in machines.value_counts(sort=False).items())
    rest = f"; {plural(unknown, 'run')} recorded no machine" if unknown else ""
    return [
        f"words/s were measured on {machines.nunique()} different machines, so speeds are not comparable: {parts}{rest}"
    ]


def _agreement(runs: list[SavedRun], ranked: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per shared sample: the share of reviews on which two runs predicted the same label, both axes
    keyed by run id, in the table's order (`named` puts the table's row numbers on them)."""
    row = {run_id: i + 1 for i, run_id in enumerate(ranked["run_id"])}
    out: dict[str, pd.DataFrame] = {}
    by_sample: dict[str, list[SavedRun]] = {}
    for r in sorted(runs, key=lambda r: row[r.run_id]):
        by_sample.setdefault(_sample_key(r.config), []).append(r)
    for sample, group in by_sample.items():
        if len(group) < 2:
            continue
        preds = [
            pd.read_csv(r.folder / "predictions.csv", dtype={"id": str}, keep_default_na=False).set_index("id")[
                "predicted"
            ]
            for r in group
        ]
        ids = [r.run_id for r in group]
        out[sample] = pd.DataFrame([[_agree(a, b) for b in preds] for a in preds], index=ids, columns=ids)
    return out


def _agree(a: pd.Series, b: pd.Series) -> float:
    common = a.index.intersection(b.index)
    return float((a[common] == b[common]).mean()) if len(common) else float("nan")
