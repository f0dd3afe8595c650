"""Build the embedded IMDB sample shipped inside the package, deterministically, from the shared
aclImdb parquet files: 1,000 test reviews (500 per class) for evaluation, 400 train reviews
(200 per class) as the pool for demonstrations, and 1,000 other train reviews (500 per class) for tuning.

    python scripts/build_sample.py [--source ../shared/data] [--out sentiq/io/data/imdb_sample.parquet]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SEED = 20111  # fixed: the sample must not change between builds
SIZES = {"eval": ("imdb-test.parquet", 500), "pool": ("imdb-train.parquet", 200), "tune": ("imdb-train.parquet", 500)}


def build(source: Path) -> pd.DataFrame:
    parts = []
    test_texts = set(pd.read_parquet(source / SIZES["eval"][0])["text"])
    for split, (name, per_class) in SIZES.items():
        df = pd.read_parquet(source / name).drop_duplicates("text")
        if split != "eval":  # 123 reviews are in both aclImdb splits; keep train splits disjoint from evaluation
            df = df[~df["text"].isin(test_texts)]
        if split == "tune":  # drawn after the pool, from what it left, so the pool stays as it was
            df = df[~df["id"].isin(pd.concat(parts)["id"])]
        for label in (1, 0):
            rows = df[df["label"] == label].sort_values("id").sample(n=per_class, random_state=SEED)
            parts.append(rows.assign(split=split))
    out = pd.concat(parts, ignore_index=True)
    return out[["id", "text", "label", "rating", "split"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--source", type=Path, default=root.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=root / "sentiq" / "io" / "data" / "imdb_sample.parquet")
    args = ap.parse_args()
    df = build(args.source)
    df.to_parquet(args.out, index=False, compression="zstd", compression_level=19)
    counts = df.groupby(["split", "label"]).size().to_dict()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {counts}")


if __name__ == "__main__":
    main()
