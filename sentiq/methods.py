"""The four classification methods: texts in, one Prediction per text out, through the engine."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sentiq.decoding import Sampling
from sentiq.engine import Engine
from sentiq.errors import OptionError
from sentiq.prompts import CONTENT_FREE, LABEL_WORDS, LABELS, PromptTemplate, build_template, clean_text, parse_label
from sentiq.settings import MethodConfig

INVALID = "invalid"
DEMO_MAX_WORDS = 100  # k-shot demonstrations are drawn from texts this short (see draw_demonstrations)
# Texts that probe whether prefix and body tokenize apart exactly: words, punctuation, digits, a line
# break and non-ASCII characters next to the seam.
SPLIT_PROBES = ("A great film.", "dull", "Terrible!\nAvoid.", "N/A", "9/10, très bon — ok", "")
OnDone = Callable[[list[int], list["Prediction"], float], None]  # (indices, their predictions, seconds)


@dataclass
class Prediction:
    label: str  # 'positive', 'negative' or 'invalid'
    p_positive: float | None  # scoring: softmax over label scores; several samples: share of positive votes
    p_positive_raw: float | None = None  # before calibration, when calibrated
    answer: str | None = None  # generated text (answers joined by ' | ' when sampling several)
    tokens: int = 0  # prompt tokens specific to this text (the whole prompt's when encoded whole)
    truncated: bool = False


@dataclass
class Classifier:
    """One method bound to an engine: prompts and demonstrations are built once per run."""

    engine: Engine
    config: MethodConfig
    pool: pd.DataFrame | None = None  # demonstration pool (k-shot), never the texts being classified
    demos: list[tuple[str, str]] = field(default_factory=list)
    _prior: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.config.method == "k-shot":
            self.demos = draw_demonstrations(self.pool, self.config.k, self.config.seed)
        self.template: PromptTemplate = build_template(self.engine.tokenizer, self.demos)
        probes = [self.template.body(p) for p in SPLIT_PROBES]
        self.cached = self.engine.splits_exactly(self.template.prefix, probes)
        self.prefix = self.engine.encode(self.template.prefix) if self.cached else []
        self.label_ids = [self.engine.encode(LABEL_WORDS[label]) for label in LABELS]

    def warm_up(self) -> None:
        self.engine.warm_up(self.prefix)
        if self.config.calibrate and self.config.scores_labels:
            self.prior()

    def prior(self) -> np.ndarray:
        """P(label) for content-free inputs, averaged: the bias that calibration divides out."""
        if self._prior is None:
            bodies = [self.encode(t) for t in CONTENT_FREE]
            probs = _softmax(self.engine.score(self.prefix, bodies, self.label_ids))
            self._prior = probs.mean(axis=0)
        return self._prior

    def predict(self, texts: Sequence[str], on_done: OnDone | None = None) -> list[Prediction]:
        fitted = [self.fit(t) for t in texts]
        # int32 arrays: ~3 KB of tokens per review in a chunk instead of ~27 KB as lists of ints
        bodies = [np.asarray(self.encode(text), dtype=np.int32) for text, _ in fitted]
        results: list[Prediction | None] = [None] * len(texts)

        def finish(idx: list[int], preds: list[Prediction], seconds: float) -> None:
            for i, p in zip(idx, preds):
                p.tokens, p.truncated = len(bodies[i]), fitted[i][1]
                results[i] = p
            if on_done is not None:
                on_done(idx, preds, seconds)

        if self.config.scores_labels:
            self._predict_scores(bodies, finish)
        else:
            self._predict_generated(bodies, [t for t, _ in fitted], finish)
        return [r for r in results if r is not None]

    def encode(self, text: str) -> list[int]:
        """The tokens the engine adds to the shared prefix for this text: the prompt's body, or the
        whole prompt when the tokenizer does not split exactly at the prefix."""
        return self.engine.encode(self.template.body(text) if self.cached else self.template.full(text))

    def fit(self, text: str) -> tuple[str, bool]:
        """Clean a text and, past max_tokens, cut its middle: the opening and the verdict usually
        sit at the two ends of a review."""
        text = clean_text(text)
        limit = self.config.max_tokens
        ids = self.engine.encode(text)
        if len(ids) <= limit:
            return text, False
        head = limit // 2
        return f"{self.engine.decode(ids[:head])} [...] {self.engine.decode(ids[-(limit - head) :])}", True

    # -- scoring -----------------------------------------------------------------------------------
    def _predict_scores(self, bodies: list[list[int]], finish: OnDone) -> None:
        prior = self.prior() if self.config.calibrate else None

        def on_batch(idx: list[int], scores: np.ndarray, seconds: float) -> None:
            raw = _softmax(scores)
            probs = raw if prior is None else _softmax(np.log(raw) - np.log(prior))
            preds = [
                Prediction(
                    label=LABELS[int(np.argmax(p))],
                    p_positive=float(p[0]),
                    p_positive_raw=float(r[0]) if prior is not None else None,
                )
                for p, r in zip(probs, raw)
            ]
            finish(idx, preds, seconds)

        self.engine.score(self.prefix, bodies, self.label_ids, on_batch=on_batch)

    # -- generation --------------------------------------------------------------------------------
    def _predict_generated(self, bodies: list[list[int]], texts: list[str], finish: OnDone) -> None:
        def on_batch(idx: list[int], answers: list[list[list[str]]], seconds: float) -> None:
            finish(idx, [vote(a) for a in answers[0]], seconds)

        self.engine.generate(self.prefix, bodies, [_sampling(self.config)], self._seeds(texts), on_batch)

    def predict_grid(
        self, texts: Sequence[str], configs: Sequence[MethodConfig], on_batch: Callable[[list[int]], None]
    ) -> list[list[Prediction]]:
        """Predictions for several decoding settings of this prompt, the prompt encoded once."""
        fitted = [self.fit(t)[0] for t in texts]
        bodies = [self.encode(t) for t in fitted]
        answers = self.engine.generate(
            self.prefix, bodies, [_sampling(c) for c in configs], self._seeds(fitted), lambda idx, _, s: on_batch(idx)
        )
        return [[vote(a) for a in per_config] for per_config in answers]

    def _seeds(self, texts: Sequence[str]) -> list[int]:
        """One seed per text, from the run seed and the text itself: a text's samples do not depend on
        its position or batch."""
        return [self.config.seed * 1_000_003 + zlib.crc32(t.encode("utf-8")) for t in texts]


def _sampling(cfg: MethodConfig) -> Sampling:
    """Decoding settings, all explicit: greedy unless the method is 'sampling'."""
    sampling = cfg.method == "sampling"
    return Sampling(
        do_sample=sampling,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        num_samples=cfg.samples if sampling else 1,
    )


def vote(answers: Sequence[str]) -> Prediction:
    """Majority vote over parsed answers. Invalid answers do not vote; a tie goes to the earliest
    valid answer; no valid answer at all is invalid."""
    parsed = [parse_label(a) for a in answers]
    valid = [p for p in parsed if p is not None]
    joined = " | ".join(answers)
    if not valid:
        return Prediction(label=INVALID, p_positive=None, answer=joined)
    counts = Counter(valid)
    best = max(counts.values())
    label = next(p for p in valid if counts[p] == best)
    share = counts["positive"] / len(valid) if len(answers) > 1 else None  # one answer is no probability
    return Prediction(label=label, p_positive=share, answer=joined)


def draw_demonstrations(pool: pd.DataFrame | None, k: int, seed: int) -> list[tuple[str, str]]:
    """k cleaned demonstrations per class from the pool's short texts, seeded, labels alternating
    (the seed decides which comes first).

    Short demonstrations show the task as well as long ones and keep every prompt small. Alternating
    labels keep one label from closing the prompt twice in a row: small models lean towards the labels
    they saw last (Zhao et al. 2021). The measurements behind both rules are in the README (k-shot)."""
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


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
