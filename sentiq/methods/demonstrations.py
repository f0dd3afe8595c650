"""k-shot's demonstrations: drawn from a pool that is never the texts being classified."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentiq.errors import OptionError
from sentiq.text import LABELS, clean_text

DEMO_MAX_WORDS = 100  # k-shot demonstrations are drawn from texts this short (see draw_demonstrations)


def draw_demonstrations(pool: pd.DataFrame | None, k: int, seed: int) -> list[tuple[str, str]]:
    """k cleaned demonstrations per class from the pool's short texts, seeded, labels alternating
    (the seed decides which comes first).

    Short demonstrations show the task as well as long ones and keep every prompt small. Alternating
    labels keep one label from closing the prompt twice in a row: small models lean towards the labels
    they saw last (Zhao et al. 2021). The measurements behind both rules are in docs/methods.md (k-shot)."""
    if pool is None or pool.empty:
        raise OptionError("k-shot needs a demonstration pool")
    have = pool["label"].value_counts()
    if min(have.get(lab, 0) for lab in LABELS) < k:
        raise OptionError(f"--k {k} needs {k} demonstrations per class; the pool has {have.to_dict()}")
    rng = np.random.default_rng(seed)
    first = int(rng.integers(2))
    per_label = {lab: _short(pool[pool["label"] == lab], k).sample(n=k, random_state=rng) for lab in LABELS}
    order = (LABELS[first], LABELS[1 - first])
    return [(clean_text(per_label[lab]["text"].iloc[i]), lab) for i in range(k) for lab in order]


def _short(texts: pd.DataFrame, k: int) -> pd.DataFrame:
    """The texts of at most DEMO_MAX_WORDS words, or the k shortest when fewer are that short."""
    words = texts["text"].str.split().str.len()
    short = texts[words <= DEMO_MAX_WORDS]
    return short if len(short) >= k else texts.loc[words.sort_values(kind="stable").index[:k]]
