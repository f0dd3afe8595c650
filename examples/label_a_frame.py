"""Label a DataFrame of reviews in memory, then measure two methods on a labelled sample and rank them.

python examples/label_a_frame.py                 # Qwen2.5-0.5B-Instruct from the hub
python examples/label_a_frame.py --model DIR     # a local model folder
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

import sentiq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="0.5b", help="0.5b, 1.5b, a hub id or a local model folder")
    ap.add_argument("--n", type=int, default=40, help="balanced sample size for the evaluation")
    args = ap.parse_args()

    reviews = pd.DataFrame(
        {
            "product": ["film-1", "film-2", "film-3"],
            "review": ["A triumph: moving and funny.", "Two hours I will never get back.", "Solid, if a bit long."],
        }
    )
    try:
        clf = sentiq.load(args.model, method="loglik")
    except sentiq.SentiqError as exc:  # a model that is not there, offline, a bad option: one line
        raise SystemExit(f"error: {exc}") from None
    print(clf)
    print(clf.classify_frame(reviews, text_column="review")[["product", "label", "p_positive"]].to_string())

    evaluation = sentiq.evaluate(clf, ["loglik", "zero-shot"], n=args.n)
    print(evaluation.metrics[["method", "accuracy", "macro_f1", "invalid", "words_per_s"]].to_string())
    with tempfile.TemporaryDirectory() as folder:  # saved only to be ranked here
        evaluation.save(folder)
        print(sentiq.compare(folder).table[["rank", "method", "accuracy", "acc_low", "acc_high"]].to_string())


if __name__ == "__main__":
    main()
