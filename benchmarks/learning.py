"""Learning from labels, measured: prompting (loglik) against a fitted calibration and a probe on the same
test texts, which no fit saw. Prints one row per method: accuracy with its Wilson 95% interval, macro
recall, within one star for ratings, and words/s.

    python benchmarks/learning.py --model ~/.cache/sentiq-standin/qwen2.5-coder-0.5b-instruct --task tweets
    python benchmarks/learning.py --model ... --task imdb --layer 12     # also a probe at layer 12 (early exit)
    python benchmarks/learning.py --model ... --task stars

Tasks (files under --data, as described in their DATA.md):
  tweets  three-way: fit on 600 TweetEval validation tweets (200 per label), test on 300 others (100 per label)
  imdb    binary: fit on 256 aclImdb train reviews (balanced), test on 300 test reviews (balanced, seed 2026)
  stars   five-point: aclImdb ratings 1-10 as 1-5 stars (1-2 -> 1, 3-4 -> 2, 7-8 -> 4, 9-10 -> 5: no 3-star
          review exists), fit on 250 train reviews, test on 250 test reviews, both in the data's proportions
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

import sentiq
from sentiq.settings import MethodConfig

STARS = {1: "1", 2: "1", 3: "2", 4: "2", 7: "4", 8: "4", 9: "5", 10: "5"}
TASKS = {  # prompt, fit n, test n, sample rule, max tokens
    "tweets": ("three-way", 600, 300, "balanced", 4096),
    "imdb": ("classifier", 256, 300, "balanced", 384),
    "stars": ("stars", 250, 250, "stratified", 384),
}


def splits(task: str, data: Path, folder: Path) -> tuple[Path, Path]:
    """The task's fitting and test files, written to `folder`: disjoint by construction."""
    if task == "tweets":
        tweets = pd.read_parquet(data / "tweeteval-sentiment-val.parquet")
        test = pd.concat([g.sample(100, random_state=2026) for _, g in tweets.groupby("label")])
        rest = tweets[~tweets["id"].isin(test["id"])]
        train = pd.concat([g.sample(200, random_state=0) for _, g in rest.groupby("label")])
    else:
        train, test = (pd.read_parquet(data / f"imdb-{split}.parquet") for split in ("train", "test"))
        if task == "stars":
            train, test = (d.assign(label=d["rating"].map(STARS)) for d in (train, test))
    paths = folder / f"{task}-train.parquet", folder / f"{task}-test.parquet"
    for frame, path in zip((train, test), paths):
        frame[["id", "text", "label"]].to_parquet(path)
    return paths


def measure(model: str, task: str, data: Path, layer: int | None, device: str) -> list[dict]:
    prompt, n_fit, n_test, rule, max_tokens = TASKS[task]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train, test = splits(task, data, Path(tmp))
        fits = {}
        for depth in [None, *([layer] if layer else [])]:
            start = time.perf_counter()
            made = sentiq.fit(
                model, dataset=str(train), prompt=prompt, n=n_fit, sample=rule, max_tokens=max_tokens,
                layer=depth, output_dir=tmp, device=device,
            )  # fmt: skip
            fits[depth] = made
            probe = made.card["probe"]
            curve = ", ".join(f"{p['n']}: {p['cv_macro_recall']:.3f}" for p in probe.get("learning_curve", []))
            print(f"fit layer {made.card['layer']}: {time.perf_counter() - start:.0f} s; probe cv {curve}", flush=True)
        base = MethodConfig(prompt=prompt, max_tokens=max_tokens)
        whole = str(fits[None].folder)
        methods = [("loglik", base), ("fitted calibration", replace(base, calibrate="fitted", fit=whole))]
        methods += [
            (f"probe, layer {f.card['layer']}", replace(base, method="probe", fit=str(f.folder))) for f in fits.values()
        ]
        for name, method in methods:
            run = sentiq.evaluate(model, method, dataset=str(test), n=n_test, sample=rule, seed=2026, device=device)
            (result,) = run.runs
            q, s = result.quality, result.speed
            low, high = _wilson(q.accuracy, q.n)
            rows.append(
                {"task": task, "method": name, "n": q.n, "accuracy": q.accuracy, "interval": f"{low:.3f}-{high:.3f}",
                 "macro_recall": q.macro_recall, "within_one": q.within_one, "words_per_s": s.words_per_s}
            )  # fmt: skip
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    return rows


def _wilson(accuracy: float, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(round(accuracy * n), n).proportion_ci(method="wilson")
    return ci.low, ci.high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", choices=sorted(TASKS), action="append", required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--layer", type=int, default=None, help="also fit and test a probe at this layer")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rows = [row for task in args.task for row in measure(args.model, task, args.data, args.layer, args.device)]
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
