"""Which unlabelled texts a fit would learn most from: the ones it is least sure of, taken in turn and
skipping any that read almost as one already taken (their states at the probe's layer point the same
way), so that a round of labels is not spent on one kind of text. Pure numpy: the benchmark of the loop
and `sentiq suggest` pick alike."""

from __future__ import annotations

import numpy as np

NEAR = 0.98  # cosine similarity of standardized states above which two texts count as near-duplicates


def pick(probs: np.ndarray, states: np.ndarray, n: int, near: float = NEAR) -> list[int]:
    """Up to `n` row indices, least confident first (the top label's probability, ties by position),
    none a near-duplicate of one picked before it. `states` (rows, features) are standardized already."""
    confidence = probs.max(axis=1)
    order = np.argsort(confidence, kind="stable")
    unit = states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
    picked: list[int] = []
    for i in order:
        if len(picked) == n:
            break
        if picked and float((unit[picked] @ unit[i]).max()) > near:
            continue
        picked.append(int(i))
    return picked
