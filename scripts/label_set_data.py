"""Build the data files the three-way and five-point measurements in docs/results.md use, deterministically,
from the shared TweetEval and aclImdb parquet files:

- tweets-tune.parquet: the TweetEval validation tweets the three-way prompt searches scored (their
  split.csv files, by text content), for the sampling search to tune on too;
- tweets-eval.parquet, tweets-pool.parquet: the other validation tweets, split into 60 tweets (20 per
  label) to draw k-shot demonstrations from and the rest to evaluate on, so that tuned and untuned runs
  are measured on the same unseen tweets;
- imdb-stars.parquet: the aclImdb test reviews with stars = ceil(rating / 2) (1, 2, 4 or 5: the data has
  no 3-star reviews).

    python scripts/label_set_data.py --splits results/standin/tuning/*/negative-neutral-positive/prompt/split.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sentiq.io.datasets import texts_used
from sentiq.text import text_digest

POOL_SEED, POOL_PER_LABEL = 7, 20


def tweets(source: Path, splits: list[str]) -> dict[str, pd.DataFrame]:
    val = pd.read_parquet(source / "tweeteval-sentiment-val.parquet")
    searched = val["text"].map(text_digest).isin(texts_used(splits))
    unseen = val[~searched]
    pool = unseen.groupby("label", group_keys=False).sample(n=POOL_PER_LABEL, random_state=POOL_SEED)
    return {"tweets-tune": val[searched], "tweets-eval": unseen.drop(pool.index), "tweets-pool": pool}


def stars(source: Path) -> pd.DataFrame:
    test = pd.read_parquet(source / "imdb-test.parquet")
    return test.assign(stars=(test["rating"] + 1) // 2)[["id", "text", "stars", "rating"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/sentiq-label-sets"))
    parser.add_argument("--splits", nargs="*", default=[], help="split.csv files of the searches to leave out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = {**tweets(args.source, args.splits), "imdb-stars": stars(args.source)}
    for name, frame in files.items():
        frame.to_parquet(args.out / f"{name}.parquet", index=False)
        print(f"{args.out / name}.parquet: {len(frame)} rows")


if __name__ == "__main__":
    main()
