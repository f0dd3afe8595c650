"""The labelling loop `sentiq suggest` closes, measured on one pass over a labelled table: each text's
label log-probabilities and its state are read once, then rounds are simulated. From `--start` random
labels, each round adds `--step` labels, chosen as `sentiq suggest` chooses (methods.suggesting.pick:
the least confident, no two near-duplicates) or at random, and a probe is fitted on what is labelled;
its macro recall is measured on texts neither strategy may pick. Also printed: the held-out calibration
(ECE, Brier, log loss) of a fitted calibration and a probe fitted on half the texts.

    python benchmarks/active_learning.py --model ~/.cache/sentiq-standin/qwen2.5-coder-0.5b-instruct \\
        --data ../shared/data/tweeteval-sentiment-val.parquet --prompt tweet --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def features(args: argparse.Namespace, texts: list[str]) -> tuple[np.ndarray, tuple[str, ...], int]:
    """(texts, labels + hidden) from one pass, cached in --cache; the label set; the label count."""
    from sentiq.core.engine import load_engine
    from sentiq.methods.plan import plan_method
    from sentiq.methods.runner import make_runner
    from sentiq.settings import MethodConfig, ModelSettings

    plan = plan_method(MethodConfig(prompt=args.prompt))
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        return np.load(cache)["x"], plan.labels, len(plan.labels)
    engine = load_engine(ModelSettings(args.model, args.device, args.dtype))
    runner = make_runner(engine, plan)
    layer = args.layer or engine.depth
    x = np.zeros((len(texts), len(plan.labels) + engine.model.config.hidden_size))
    started = time.perf_counter()
    for done in runner.feature_batches(texts, [layer]):
        x[done.indices] = done.result
    print(
        f"one pass over {len(texts)} texts (layer {layer} of {engine.depth}) in {time.perf_counter() - started:.0f} s"
    )
    if cache is not None:
        np.savez(cache, x=x)
    return x, plan.labels, len(plan.labels)


def probe(x: np.ndarray, y: np.ndarray, seed: int):
    """A probe as a fit makes one (standardized states, logistic regression, C by cross-validated log loss)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sentiq.methods.fitted import C_GRID

    folds = StratifiedKFold(int(min(5, np.bincount(y)[np.unique(y)].min())), shuffle=True, random_state=seed)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    grid = {"logisticregression__C": list(C_GRID)}
    return GridSearchCV(pipeline, grid, cv=folds, scoring="neg_log_loss").fit(x, y).best_estimator_


def held_out_calibration(x: np.ndarray, y: np.ndarray, labels: tuple[str, ...], n: int) -> dict[str, dict]:
    """Fitted calibration and probe fitted on half the texts (as `sentiq fit` does), measured on the rest."""
    from sentiq.methods.fitted import fit_linear
    from sentiq.workflows.confidence import confidence_metrics, scored

    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[: len(y) // 2], order[len(y) // 2 :]
    print(f"\nheld-out calibration: fitted on {len(train)} texts, measured on the other {len(test)}")
    out = {}
    for name, columns in (("calibration", slice(0, n)), ("probe", slice(n, None))):
        linear, _ = fit_linear(x[train][:, columns], y[train], labels, seed=0)
        probs = np.exp(linear.logprobs(x[test][:, columns]))
        given = [labels[i] for i in probs.argmax(axis=1)]
        gold = [labels[i] for i in y[test]]
        m = confidence_metrics(scored(probs, given, gold, labels), labels)
        acc = float(np.mean([g == t for g, t in zip(given, gold)]))
        print(
            f"  {name:<11} accuracy {acc:.3f}  ECE {m['ece']:.3f}  Brier {m['brier']:.3f}  log loss "
            f"{m['log_loss']:.3f}  AURC {m['aurc']:.3f}  coverage at 95% {m['coverage_at_95']:.2f}"
        )
        out[name] = {"accuracy": acc, **m}
    return out


def rounds(x: np.ndarray, y: np.ndarray, n: int, args: argparse.Namespace, seed: int) -> dict[str, list[float]]:
    """Macro recall on the test half after each round, for suggested and for random labels."""
    from sklearn.metrics import balanced_accuracy_score

    from sentiq.methods.suggesting import pick

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    pool, test = order[: len(y) // 2], order[len(y) // 2 :]
    start = list(rng.choice(pool, args.start, replace=False))
    states = x[:, n:]
    out: dict[str, list[float]] = {}
    for strategy in ("suggested", "random"):
        labelled, curve = list(start), []
        draw = np.random.default_rng(seed + 1)
        while True:
            model = probe(states[labelled], y[labelled], seed)
            curve.append(float(balanced_accuracy_score(y[test], model.predict(states[test]))))
            if len(labelled) >= args.until:
                break
            rest = np.setdiff1d(pool, labelled)
            if strategy == "random":
                labelled += list(draw.choice(rest, args.step, replace=False))
                continue
            scaler = model.named_steps["standardscaler"]
            chosen = pick(model.predict_proba(states[rest]), scaler.transform(states[rest]), args.step)
            labelled += list(rest[chosen])
        out[strategy] = curve
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="A labelled table: text, label (in the prompt's label set).")
    parser.add_argument("--prompt", default="tweet")
    parser.add_argument("--layer", type=int, default=None, help="The probe's layer (default: the last).")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--start", type=int, default=60)
    parser.add_argument("--step", type=int, default=60)
    parser.add_argument("--until", type=int, default=480)
    parser.add_argument("--cache", default=None, help="An .npz file keeping the pass's features between runs.")
    parser.add_argument("--no-calibration", action="store_true", help="Leave out the held-out calibration.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)

    data = pd.read_parquet(args.data) if args.data.endswith(".parquet") else pd.read_csv(args.data)
    x, labels, n = features(args, data["text"].astype(str).tolist())
    y = np.array([labels.index(label) for label in data["label"]])
    calibration = {} if args.no_calibration else held_out_calibration(x, y, labels, n)

    seeds = [int(s) for s in args.seeds.split(",")]
    curves = [rounds(x, y, n, args, seed) for seed in seeds]
    sizes = list(range(args.start, args.until + 1, args.step))
    print(f"\nmacro recall on the held-out half, mean (sd) over seeds {args.seeds}")
    print(f"{'labels':>7}  {'suggested':>15}  {'random':>15}")
    mean = {s: np.mean([c[s] for c in curves], axis=0) for s in ("suggested", "random")}
    for i, size in enumerate(sizes):
        cells = [f"{mean[s][i]:.3f} ({np.std([c[s][i] for c in curves]):.3f})" for s in ("suggested", "random")]
        print(f"{size:>7}  {cells[0]:>15}  {cells[1]:>15}")
    goal = mean["random"][-1]
    reached = next((size for size, r in zip(sizes, mean["suggested"]) if r >= goal), None)
    print(
        f"\nrandom labels reach {goal:.3f} at {sizes[-1]}; suggested labels reach it at "
        + (f"{reached}" if reached is not None else f"none of {sizes} (best {mean['suggested'].max():.3f})")
    )
    return {"calibration": calibration, "sizes": sizes, "curves": curves, "goal": float(goal), "reached": reached}


if __name__ == "__main__":
    main()
