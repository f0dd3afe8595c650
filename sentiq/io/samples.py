"""Seeded samples of labelled texts: balanced (as many of every label) or stratified (the data's
proportions), and the largest sample a small dataset allows when no size was given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sentiq.errors import DataError
from sentiq.text import LABELS


def fitted_sample(
    df: pd.DataFrame, n: int | None, labels: Sequence[str] = LABELS, rule: str = "balanced"
) -> tuple[int | None, str, str | None]:
    """The default sample size `n` and `rule` as the data allows them: n when it can, else the largest
    sample it allows (stratified when some label has no text at all), with a sentence saying so."""
    have = df["label"].value_counts()
    if n is None:
        return n, rule, None
    if rule == "balanced":
        most = _largest_balanced(have, labels)
        if most >= n:
            return n, rule, None
        if most >= len(labels):
            counts = _and([f"{most // len(labels)} {lab}" for lab in labels])
            return most, rule, f"no --n given: the dataset allows a balanced sample of {most} ({counts}), taken"
        missing = _and([lab for lab in labels if not have.get(lab, 0)])
        rule = "stratified"
        if len(df) >= n:
            return n, rule, f"no --n given: the dataset has no {missing} text, so a stratified sample of {n} is taken"
        return len(df), rule, f"no --n given: the dataset has no {missing} text; all its {len(df)} texts taken"
    if len(df) >= n:
        return n, rule, None
    return len(df), rule, f"no --n given: all the dataset's {len(df)} texts taken"


def draw_sample(
    df: pd.DataFrame, n: int | None, seed: int, labels: Sequence[str] = LABELS, rule: str = "balanced"
) -> pd.DataFrame:
    """n texts drawn with `seed`: balanced (as many of every label) or stratified (the data's own
    proportions of its labels, largest remainders first); None keeps all, shuffled."""
    if rule == "balanced" or n is None:
        return balanced_sample(df, n, seed, labels)
    have = df["label"].value_counts()
    if n > len(df):
        raise DataError(f"--n {n} is more than the {len(df)} texts of the dataset (use --n {len(df)} or less)")
    share = have / have.sum() * n
    want = share.astype(int)
    for label in (share - want).sort_values(ascending=False, kind="stable").index[: n - int(want.sum())]:
        want[label] += 1
    parts = [df[df["label"] == lab].sample(n=int(k), random_state=seed) for lab, k in want.items() if k]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def balanced_sample(df: pd.DataFrame, n: int | None, seed: int, labels: Sequence[str] = LABELS) -> pd.DataFrame:
    """n texts, as many per label (the remainder to the first labels), drawn with `seed`; None keeps all,
    shuffled."""
    if n is None:
        return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if n < len(labels):
        raise DataError(f"--n must be at least {len(labels)} (one text per label)")
    want = {lab: n // len(labels) + (i < n % len(labels)) for i, lab in enumerate(labels)}
    have = df["label"].value_counts().to_dict()
    if any(have.get(lab, 0) < want[lab] for lab in labels):
        most = _largest_balanced(have, labels)
        said = lambda counts: _and([f"{counts.get(lab, 0)} {lab}" for lab in labels])  # noqa: E731
        stratified = " or --sample stratified" if len(labels) > 2 else ""
        fix = f"use --n {most} or less{stratified}"
        if not most:  # a label without a single text: no balanced sample at all
            fix = f"it has no {_and([lab for lab in labels if not have.get(lab)])} text: use --sample stratified"
        raise DataError(f"--n {n} needs {said(want)} texts; the dataset has {said(have)} ({fix})")
    parts = [df[df["label"] == lab].sample(n=want[lab], random_state=seed) for lab in labels]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _largest_balanced(have: Any, labels: Sequence[str]) -> int:
    """The largest balanced sample label counts `have` allow: as many of every label as the rarest has."""
    return len(labels) * min(int(have.get(lab, 0)) for lab in labels)


def _and(items: list[str]) -> str:
    """'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
