"""k-shot's demonstrations: drawn from a pool that is never the texts being classified."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sentiq.errors import OptionError
from sentiq.text import LABELS, clean_text

DEMO_MAX_WORDS = 100  # k-shot demonstrations are drawn from texts this short (see draw_demonstrations)


def draw_demonstrations(
    pool: pd.DataFrame | None, k: int, seed: int, labels: Sequence[str] = LABELS
) -> list[tuple[str, str]]:
    """k cleaned demonstrations per label from the pool's short texts, seeded, the labels taking turns in
    their order rotated by the seed (which label comes first, and so which closes the prompt).

    Short demonstrations show the task as well as long ones and keep every prompt small. Labels taking turns
    keep one label from closing the prompt twice in a row: small models lean towards the labels
    they saw last (Zhao et al. 2021). The measurements behind both rules are in docs/methods.md (k-shot)."""
    if pool is None or pool.empty:
        raise OptionError("k-shot needs a demonstration pool")
    have = pool["label"].value_counts()
    short = [lab for lab in labels if have.get(lab, 0) < k]
    if short:
        raise OptionError(
            f"--k {k} needs {k} demonstrations of every label; the pool has {have.get(short[0], 0)} '{short[0]}' "
            f"({', '.join(f'{lab} {n}' for lab, n in have.items())}): give --demos a file with texts of every label"
        )
    rng = np.random.default_rng(seed)
    first = int(rng.integers(len(labels)))
    per_label = {lab: _short(pool[pool["label"] == lab], k).sample(n=k, random_state=rng) for lab in labels}
    order = (*labels[first:], *labels[:first])
    return [(clean_text(per_label[lab]["text"].iloc[i]), lab) for i in range(k) for lab in order]


def _short(texts: pd.DataFrame, k: int) -> pd.DataFrame:
    """The texts of at most DEMO_MAX_WORDS words, or the k shortest when fewer are that short."""
    words = texts["text"].str.split().str.len()
    short = texts[words <= DEMO_MAX_WORDS]
    return short if len(short) >= k else texts.loc[words.sort_values(kind="stable").index[:k]]
