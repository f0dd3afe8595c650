"""Early exits measured: on the same held-out texts, in this one process and on one engine, the probe of
each exit alone (a threshold of 0 there: every text leaves), the last layer's probe, and the early-exit
fit as `sentiq fit --exits` chose it: accuracy with its 95% Wilson interval, macro recall, words/s, the
ratio to the last layer's words/s, the mean layers run per text and each exit's share. Prints a table,
writes the figures as JSON and the speed–accuracy frontier as a PNG.

    python benchmarks/cascade.py --model ~/.cache/sentiq-standin/qwen2.5-coder-0.5b-instruct \\
        --fit-data ../shared/data/imdb-train.parquet --data ../shared/data/imdb-test.parquet \\
        --exits 6,8,10,12,16 --n-fit 300 --n 300 --out results/cascade

With --fit FIT the fit is read instead of made (its texts are left out of the measured ones by digest).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd


def variants(fit: Any, max_loss: float) -> list[tuple[str, Any, bool]]:
    """(name, fit, on the second model) triples: each early exit's probe alone, the first model's last
    layer alone, the second model's probe alone (a cascade's), and the fit's stages as chosen."""
    alone = [
        (
            f"layer {e.layer}",
            replace(
                fit, exits=(*[replace(x, threshold=1.0) for x in fit.exits[:j]], replace(e, threshold=0.0)), then=None
            ),
            False,
        )
        for j, e in enumerate(fit.exits)
    ]
    alone.append((f"layer {fit.layer}", replace(fit, exits=(), then=None), False))
    exits = ",".join(str(e.layer) for e in fit.exits)
    chosen = f"early exits {exits}" if exits else "cascade"
    if fit.then is not None:
        card = {**fit.card, "model": fit.then.model, "layer": fit.then.layer}
        second = replace(fit, card=card, probe=fit.then.probe, exits=(), then=None)
        alone.append((f"{fit.then.label} layer {fit.then.layer}", second, True))
        chosen = f"{chosen} then {fit.then.label}" if exits else f"cascade to {fit.then.label}"
    return [*alone, (f"{chosen} (max loss {max_loss:g})", fit, False)]


def measure(engine: Any, plan: Any, texts: list[str], gold: list[str], words: int, repeat: int) -> dict[str, Any]:
    """One variant over the texts, after a warm-up: its accuracy, interval, words/s (the fastest of
    `repeat` passes) and exits."""
    from sklearn.metrics import balanced_accuracy_score

    from sentiq.methods.runner import make_runner
    from sentiq.workflows.metrics import wilson
    from sentiq.workflows.run_files import exit_shares

    runner = make_runner(engine, plan)
    runner.predict(texts[:4])
    seconds = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        predictions = runner.predict(texts)
        seconds = min(seconds, time.perf_counter() - started)
    labels = [p.label for p in predictions]
    correct = sum(a == b for a, b in zip(labels, gold))
    low, high = wilson(correct, len(gold))
    frame = pd.DataFrame({"exit": [p.exit or plan.fit.layer for p in predictions]})  # no exits: the fit's layer
    if plan.fit.then is not None:
        frame["exit_model"] = [p.exit_model for p in predictions]
    staged = exit_shares(frame)
    return {
        "accuracy": correct / len(gold),
        "interval": [low, high],
        "macro_recall": float(balanced_accuracy_score(gold, labels)),
        "seconds": seconds,
        "words_per_s": words / seconds,
        "mean_layers": staged["mean_layers"],
        "shares": staged["exit_shares"],
    }


def held_out(args: argparse.Namespace, labels: tuple[str, ...], fitted: frozenset[str]) -> pd.DataFrame:
    """--n texts of --data in the label set, drawn by --sample, none the fit was fitted on."""
    from sentiq.io.datasets import load_labelled
    from sentiq.io.samples import draw_sample
    from sentiq.settings import DataSpec
    from sentiq.text import text_digest

    pool = load_labelled(DataSpec(source=args.data), labels)
    pool = pool[[text_digest(t) not in fitted for t in pool["text"]]]
    return draw_sample(pool, args.n, args.seed, labels, args.sample)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy (with its interval) against words/s, one point per variant, the cascade marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        early = row is rows[-1]
        low, high = row["interval"]
        ax.errorbar(
            row["words_per_s"],
            row["accuracy"],
            yerr=[[row["accuracy"] - low], [high - row["accuracy"]]],
            fmt="*" if early else "o",
            markersize=12 if early else 6,
            color="tab:red" if early else "tab:blue",
            capsize=3,
        )
        ax.annotate(
            row["name"].split(" (")[0],
            (row["words_per_s"], row["accuracy"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set_xlabel("words/s")
    ax.set_ylabel("accuracy (95% interval)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--fit", help="a fit made with --exits (else one is made from --fit-data)")
    parser.add_argument("--fit-data", help="labelled texts to fit on")
    parser.add_argument("--data", required=True, help="labelled texts to measure on")
    parser.add_argument("--prompt", default="classifier")
    parser.add_argument("--exits", default="6,12")
    parser.add_argument("--then", help="a second model for a cascade across models")
    parser.add_argument(
        "--max-loss", type=float, help="the fit's (default 0.01); with --fit, its thresholds chosen again for this"
    )
    parser.add_argument("--n-fit", type=int, default=300)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", default="balanced", choices=["balanced", "stratified"])
    parser.add_argument("--repeat", type=int, default=1, help="passes per variant; the fastest is kept")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", default="results/cascade")
    args = parser.parse_args(argv)

    import sentiq
    from sentiq.core.engine import load_engine
    from sentiq.core.models import describe_machine
    from sentiq.methods.fit import load_fit
    from sentiq.methods.plan import plan_method
    from sentiq.settings import MethodConfig, ModelSettings
    from sentiq.text import word_count

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = ModelSettings(args.model, args.device, args.dtype)
    rechoose = args.fit is not None and args.max_loss is not None  # a given fit's thresholds chosen again
    if args.fit is None:
        started = time.perf_counter()
        made = sentiq.fit(
            model,
            dataset=args.fit_data,
            n=args.n_fit,
            sample=args.sample,
            prompt=args.prompt,
            exits=[int(k) for k in args.exits.split(",") if k],
            then=args.then,
            max_loss=args.max_loss,
            max_tokens=args.max_tokens,
            seed=args.seed,
            output_dir=out,
            overwrite=True,
        )
        args.fit = str(made.folder)
        print(f"fit in {time.perf_counter() - started:.0f} s: {args.fit}")
    config = MethodConfig(
        method="probe",
        prompt=load_fit(args.fit).prompt_spec,
        fit=args.fit,
        max_tokens=args.max_tokens,
        max_loss=args.max_loss if rechoose else None,
    )
    plan = plan_method(config)
    fit = plan.fit
    engine = load_engine(model)
    second = (
        load_engine(replace(model, model=os.path.expanduser(fit.then.model["source"])))
        if fit.then is not None
        else None
    )
    sample = held_out(args, plan.labels, fit.texts)
    texts, gold = list(sample["text"]), list(sample["label"])
    words = sum(word_count(t) for t in texts)
    rows = []
    for name, variant, on_second in variants(fit, args.max_loss if rechoose else fit.card["early_exit"]["max_loss"]):
        row = {
            "name": name,
            **measure(second if on_second else engine, replace(plan, fit=variant), texts, gold, words, args.repeat),
        }
        rows.append(row)
        print(f"{name}: {row['accuracy']:.3f} at {row['words_per_s']:.0f} words/s", flush=True)
    last = rows[-2]  # the last stage alone
    machine = describe_machine()
    print(f"\n{engine.lm.source.label} · {len(texts)} held-out texts of {args.data} · fit {args.fit} · {machine}")
    print(
        f"{'':44} {'accuracy':>8} {'95% interval':>13} {'macro rec.':>10} {'words/s':>8} {'x last':>7} {'layers':>6}  shares"
    )
    for r in rows:
        r["speedup"] = r["words_per_s"] / last["words_per_s"]
        shares = " ".join(f"{k}:{v:.0%}" for k, v in r["shares"].items())
        low, high = r["interval"]
        print(
            f"{r['name']:44} {r['accuracy']:8.3f} {low:6.3f}-{high:.3f} {r['macro_recall']:10.3f} "
            f"{r['words_per_s']:8.0f} {r['speedup']:7.2f} {r['mean_layers'] or float('nan'):6.1f}  {shares}"
        )
    record = {
        "model": engine.lm.source.label,
        "fit": args.fit,
        "card_early_exit": fit.card.get("early_exit"),
        "n": len(texts),
        "seed": args.seed,
        "machine": machine,
        "rows": rows,
    }
    (out / "cascade.json").write_text(json.dumps(record, indent=2))
    plot(
        rows,
        out / "frontier.png",
        f"{engine.lm.source.label} · {len(texts)} held-out texts · words/s on {machine.get('cpu', machine)} "
        f"({machine.get('cpus')} cores; {' '.join(machine.get('cpu_flags', []))})",
    )
    print(f"wrote {out / 'cascade.json'} and {out / 'frontier.png'}")
    return record


if __name__ == "__main__":
    main()
