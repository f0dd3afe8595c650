"""The four classification methods: texts in, one Prediction per text out, through the engine. Several
prompts make an ensemble: scoring methods average their label log-probabilities, generation methods
vote across them. Calibration divides a label prior out of the scores."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sentiq.core.decoding import Sampling
from sentiq.core.engine import Engine
from sentiq.errors import OptionError
from sentiq.methods.calibration import calibration_record, domain_inputs, log_softmax, softmax
from sentiq.methods.prompts import CONTENT_FREE, Prompt, PromptTemplate, build_template, load_prompts
from sentiq.predictions import INVALID, Prediction
from sentiq.settings import MethodConfig
from sentiq.text import LABELS, clean_text

DEMO_MAX_WORDS = 100  # k-shot demonstrations are drawn from texts this short (see draw_demonstrations)
# Texts that probe whether prefix and body tokenize apart exactly: words, punctuation, digits, a line
# break and non-ASCII characters next to the seam.
SPLIT_PROBES = ("A great film.", "dull", "Terrible!\nAvoid.", "N/A", "9/10, très bon — ok", "")
OnDone = Callable[[list[int], list["Prediction"], float], None]  # (indices, their predictions, seconds)


@dataclass
class Bound:
    """One prompt rendered for one engine: its shared prefix encoded once, its label words as tokens."""

    prompt: Prompt
    template: PromptTemplate
    cached: bool  # prefix and body tokenize apart exactly: the prefix's cache is reused
    prefix: list[int]
    label_ids: list[list[int]]

    @classmethod
    def bind(cls, engine: Engine, prompt: Prompt, demos: Sequence[tuple[str, str]]) -> Bound:
        template = build_template(engine.tokenizer, prompt, demos)
        cached = engine.splits_exactly(
            template.prefix, [template.body(p) for p in SPLIT_PROBES], f"prompt '{prompt.ref}'"
        )
        prefix = engine.encode(template.prefix) if cached else []
        return cls(prompt, template, cached, prefix, [engine.encode(w) for w in prompt.words])

    @property
    def first_ids(self) -> list[int]:
        """Each label word's first token: where a generated answer commits to a label."""
        return [ids[0] if ids else -1 for ids in self.label_ids]

    @property
    def answerable(self) -> bool:
        """Whether a generated answer can commit to a label with its first token: the label words must
        differ there."""
        first = self.first_ids
        return first[0] != first[1]

    def body(self, engine: Engine, text: str) -> np.ndarray:
        """The tokens the engine adds to the shared prefix for this text (int32: ~3 KB per review instead
        of ~27 KB as a list of ints): the prompt's body, or the whole prompt when it does not split."""
        return self.bodies(engine, [text])[0]

    def bodies(self, engine: Engine, texts: Sequence[str]) -> list[np.ndarray]:
        """`body` of every text, in one call of the tokenizer (a fast tokenizer encodes a batch in
        parallel, outside the GIL)."""
        render = self.template.body if self.cached else self.template.full
        return [np.asarray(ids, dtype=np.int32) for ids in engine.encode_many([render(t) for t in texts])]


@dataclass
class Classifier:
    """One method bound to an engine: prompts and demonstrations are built once per run.

    `prior` fixes the calibration prior (a resumed run's); otherwise it is estimated when first needed
    and handed to `on_prior` with how it was estimated, so that it can be recorded."""

    engine: Engine
    config: MethodConfig
    pool: pd.DataFrame | None = None  # demonstration pool (k-shot), never the texts being classified
    prompts: list[Prompt] | None = None  # None: load config.prompt
    prior: np.ndarray | None = None
    on_prior: Callable[[dict[str, Any]], None] | None = None
    demos: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.config.method == "k-shot":
            self.demos = draw_demonstrations(self.pool, self.config.k, self.config.demo_draw)
        self.prompts = self.prompts or load_prompts(self.config.prompt)
        self.bound = [Bound.bind(self.engine, p, self.demos) for p in self.prompts]
        if not self.config.scores_labels:
            for b in self.bound:
                _check_first_tokens(b, self.engine)

    def warm_up(self) -> None:
        for b in self.bound:
            self.engine.warm_up(b.prefix)

    def predict(self, texts: Sequence[str], on_done: OnDone | None = None) -> list[Prediction]:
        fitted = self.fit_all(texts)
        cleaned = [t for t, _ in fitted]
        results: list[Prediction | None] = [None] * len(texts)
        tokens = np.zeros(len(texts), dtype=np.int64)

        def finish(idx: list[int], preds: list[Prediction], seconds: float) -> None:
            for i, p in zip(idx, preds):
                p.tokens, p.truncated = int(tokens[i]), fitted[i][1]
                results[i] = p
            if on_done is not None:
                on_done(idx, preds, seconds)

        if self.config.scores_labels:
            self._predict_scores(cleaned, tokens, finish)
        else:
            self._predict_generated(cleaned, tokens, finish)
        return [r for r in results if r is not None]

    def fit(self, text: str) -> tuple[str, bool]:
        return self.fit_all([text])[0]

    def fit_all(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        """Clean each text and, past max_tokens, cut its middle: the opening and the verdict usually sit
        at the two ends of a review. Only texts of more bytes than that are tokenized here, in one call:
        a token covers at least a byte (one more token at most for a tokenizer that marks the start)."""
        cleaned = [clean_text(t) for t in texts]
        limit = self.config.max_tokens
        fitted = [(t, False) for t in cleaned]
        long = [i for i, t in enumerate(cleaned) if len(t.encode("utf-8")) + 1 > limit]
        for i, ids in zip(long, self.engine.encode_many([cleaned[i] for i in long])):
            if len(ids) > limit:
                head = limit // 2
                fitted[i] = (
                    f"{self.engine.decode(ids[:head])} [...] {self.engine.decode(ids[-(limit - head) :])}",
                    True,
                )
        return fitted

    # -- scoring -----------------------------------------------------------------------------------
    def label_logprobs(
        self, texts: Sequence[str], tokens: np.ndarray | None = None, on_batch: Callable | None = None
    ) -> np.ndarray:
        """log P(label | prompt, text), normalised over the labels and averaged over the prompts and, with
        `tail`, over each text and its ending: (texts, labels). `on_batch(idx, their rows, seconds)` after
        each batch of the last pass (the whole texts, last prompt), which covers every text."""
        total = np.zeros((len(texts), len(LABELS)))
        members = np.zeros(len(texts))
        seconds = np.zeros(len(texts))
        whole = (list(range(len(texts))), list(texts))
        views = [endings(texts, self.config.tail)] if self.config.tail else []
        passes = [(b, view) for view in [*views, whole] for b in self.bound]
        for j, (b, (which, inputs)) in enumerate(passes):
            bodies = b.bodies(self.engine, inputs)
            if tokens is not None:
                np.add.at(tokens, which, [len(x) for x in bodies])

            def batch_done(
                rows: list[int],
                scores: np.ndarray,
                secs: float,
                which: list[int] = which,
                last: bool = j == len(passes) - 1,
            ) -> None:
                idx = [which[r] for r in rows]
                total[idx] += log_softmax(scores)
                members[idx] += 1
                seconds[idx] += secs / max(1, len(idx))
                if last and on_batch is not None:
                    on_batch(idx, total[idx] / members[idx, None], float(seconds[idx].sum()))

            self.engine.score(b.prefix, bodies, b.label_ids, on_batch=batch_done)
        return total / members[:, None]

    def scores_and_answers(
        self, texts: Sequence[str], on_batch: Callable | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """For tune-prompt, from one pass of the first prompt: label log-probabilities normalised over the
        labels (as label_logprobs), the raw log-probabilities of answer_firsts' tokens as the first answer
        token (columns 0 and 1: the label words' own), and the label index each of those names."""
        b = self.bound[0]
        ids, names = answer_firsts(b, self.engine)
        bodies = b.bodies(self.engine, texts)
        raw = self.engine.score(b.prefix, bodies, b.label_ids, on_batch=on_batch, firsts=ids)
        n = len(b.label_ids)
        return log_softmax(raw[:, :n]), raw[:, n:], names

    def _predict_scores(self, texts: list[str], tokens: np.ndarray, finish: OnDone) -> None:
        if self.prior is None and self.config.calibrated:
            inputs, where = self._prior_inputs(texts)
            if self.config.calibrate != "batch":
                self._set_prior(softmax(self.label_logprobs(inputs)).mean(axis=0), where)
            else:  # the prior is these texts' own mean: their labels wait for all their scores
                spent: list[float] = []
                logp = self.label_logprobs(texts, tokens, lambda idx, rows, seconds: spent.append(seconds))
                self._set_prior(softmax(logp).mean(axis=0), where)
                finish(list(range(len(texts))), self._scored(logp), sum(spent))
                return
        self.label_logprobs(texts, tokens, lambda idx, rows, seconds: finish(idx, self._scored(rows), seconds))

    def _prior_inputs(self, texts: Sequence[str]) -> tuple[Sequence[str], str]:
        """The inputs a prior is the mean label probability of, and how to say so."""
        if self.config.calibrate == "contextual":
            return CONTENT_FREE, "content-free inputs"
        if self.config.calibrate == "domain":
            inputs = domain_inputs(texts, self.config.seed)
            return inputs, f"{len(inputs)} random in-domain word sequences"
        return texts, f"the first {len(texts)} texts classified"

    def _scored(self, logp: np.ndarray) -> list[Prediction]:
        raw = softmax(logp)
        calibrated = self.prior is not None and self.config.calibrated
        probs = softmax(logp - np.log(self.prior)) if calibrated else raw
        return [
            Prediction(
                label=LABELS[int(np.argmax(p))],
                p_positive=float(p[0]),
                p_positive_raw=float(r[0]) if calibrated else None,
            )
            for p, r in zip(probs, raw)
        ]

    def _set_prior(self, prior: np.ndarray, where: str) -> None:
        self.prior = prior
        if self.on_prior is not None:
            self.on_prior(calibration_record(self.config.calibrate, prior, where))

    # -- generation --------------------------------------------------------------------------------
    def _predict_generated(self, texts: list[str], tokens: np.ndarray, finish: OnDone) -> None:
        """Each prompt answers every text; the answers of all prompts (and samples) vote. With `tail`,
        the first tokens of the label words get, at the first step, the mean of the log-odds the whole
        text and its ending give them, as scoring averages the two views. Calibrated, each prompt's prior
        over those tokens is then divided out of the first step."""
        endings = [self._ending_first_tokens(b, texts, tokens) if self.config.tail else None for b in self.bound]
        priors = self._first_token_priors(texts, endings) if self.config.calibrated else [()] * len(self.bound)
        answers: list[list[tuple[str, str | None]]] = [[] for _ in texts]
        seconds = np.zeros(len(texts))
        for j, b in enumerate(self.bound):
            bodies = b.bodies(self.engine, texts)
            tokens += [len(x) for x in bodies]

            def batch_done(
                idx: list[int],
                got: list[list[list[str]]],
                secs: float,
                b: Bound = b,
                last: bool = j == len(self.bound) - 1,
            ) -> None:
                seconds[idx] += secs / max(1, len(idx))
                for i, per_text in zip(idx, got[0]):
                    answers[i] += [(a, b.prompt.parse(a)) for a in per_text]
                if last:
                    finish(idx, [vote(answers[i]) for i in idx], float(seconds[idx].sum()))

            sampling = _sampling(self.config, priors[j])
            mix = (b.first_ids, endings[j]) if endings[j] is not None else None
            self.engine.generate(b.prefix, bodies, [sampling], self._seeds(texts), batch_done, mix)

    def _ending_first_tokens(self, b: Bound, texts: Sequence[str], tokens: np.ndarray | None = None) -> np.ndarray:
        """log P(first token of each label word | prompt, the text's last `tail` words), normalised over
        the labels: (texts, labels), NaN for texts no longer than that."""
        out = np.full((len(texts), len(LABELS)), np.nan)
        which, ends = endings(texts, self.config.tail)
        if which:
            bodies = b.bodies(self.engine, ends)
            out[which] = log_softmax(self.engine.score(b.prefix, bodies, _firsts(b)))
            if tokens is not None:
                np.add.at(tokens, which, [len(x) for x in bodies])
        return out

    def _first_token_priors(
        self, texts: list[str], endings: list[np.ndarray | None]
    ) -> list[tuple[tuple[int, float], ...]]:
        """Per prompt, (first token of each label word, log prior): the prior is the mean probability of
        those tokens as the first answer token, over the calibration's inputs (for batch, a scoring pass
        over these texts before they are answered), their endings averaged in as the answers will have."""
        if self.prior is None:
            inputs, where = self._prior_inputs(texts)
            priors = []
            for b, ending in zip(self.bound, endings):
                first = log_softmax(self.engine.score(b.prefix, b.bodies(self.engine, inputs), _firsts(b)))
                if self.config.tail:
                    ending = ending if inputs is texts else self._ending_first_tokens(b, inputs)
                    first = np.where(np.isnan(ending), first, (first + ending) / 2)
                priors.append(softmax(first))
            self._set_prior(np.array([p.mean(axis=0) for p in priors]), where)
        assert self.prior is not None
        return [tuple(zip(b.first_ids, np.log(p).tolist())) for b, p in zip(self.bound, np.atleast_2d(self.prior))]

    def predict_grid(
        self, texts: Sequence[str], configs: Sequence[MethodConfig], on_batch: Callable[[list[int]], None]
    ) -> list[list[Prediction]]:
        """Predictions for several decoding settings of the first prompt, encoded once."""
        b = self.bound[0]
        fitted = [t for t, _ in self.fit_all(texts)]
        bodies = b.bodies(self.engine, fitted)
        got = self.engine.generate(
            b.prefix, bodies, [_sampling(c) for c in configs], self._seeds(fitted), lambda idx, _, s: on_batch(idx)
        )
        return [[vote([(a, b.prompt.parse(a)) for a in per_text]) for per_text in per_config] for per_config in got]

    def _seeds(self, texts: Sequence[str]) -> list[int]:
        """One seed per text, from the run seed and the text itself: a text's samples do not depend on
        its position or batch."""
        return [self.config.seed * 1_000_003 + zlib.crc32(t.encode("utf-8")) for t in texts]


def _firsts(b: Bound) -> list[list[int]]:
    return [ids[:1] for ids in b.label_ids]


def answer_firsts(b: Bound, engine: Engine) -> tuple[list[int], list[int]]:
    """The first tokens an answer can name a label with, as answers are parsed (whatever the casing):
    each label word's own first token, then those of its other casings; a token that could start
    either label is left out. With the index of the label each names."""
    own = b.first_ids
    spelled = [{engine.encode(f(w))[0] for f in (str.lower, str.capitalize, str.upper)} for w in b.prompt.words]
    shared = set.intersection(*spelled)
    others = [(t, j) for j, firsts in enumerate(spelled) for t in sorted(firsts - shared) if t not in own]
    return own + [t for t, _ in others], list(range(len(own))) + [j for _, j in others]


def _check_first_tokens(b: Bound, engine: Engine) -> None:
    """Generation methods need label words that differ in their first token: that token is where an
    answer commits to a label."""
    if not b.answerable:
        first = b.label_ids[0][:1]
        token = engine.decode(first) if first else ""
        a, c = b.prompt.words
        raise OptionError(
            f"prompt '{b.prompt.ref}': label words '{a}' and '{c}' start with the same token ('{token}'), so a "
            "generated answer cannot commit to one with its first token; choose words that start differently"
        )


def _sampling(cfg: MethodConfig, first_prior: tuple[tuple[int, float], ...] = ()) -> Sampling:
    """Decoding settings, all explicit: greedy unless the method is 'sampling'."""
    sampling = cfg.method == "sampling"
    return Sampling(
        first_prior=first_prior,
        do_sample=sampling,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        num_samples=cfg.samples if sampling else 1,
    )


def vote(answers: Sequence[tuple[str, str | None]]) -> Prediction:
    """Majority vote over (answer, parsed label) pairs. Invalid answers do not vote; a tie goes to the
    earliest valid answer; no valid answer at all is invalid."""
    valid = [p for _, p in answers if p is not None]
    joined = " | ".join(a for a, _ in answers)
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


def endings(texts: Sequence[str], n: int) -> tuple[list[int], list[str]]:
    """The texts longer than n words (by index) and their last n words: reviews tend to close on their
    verdict, after a plot summary that carries none. A shorter text is its own ending."""
    words = [t.split() for t in texts]
    which = [i for i, w in enumerate(words) if len(w) > n]
    return which, [" ".join(words[i][-n:]) for i in which]


def _short(texts: pd.DataFrame, k: int) -> pd.DataFrame:
    """The texts of at most DEMO_MAX_WORDS words, or the k shortest when fewer are that short."""
    words = texts["text"].str.split().str.len()
    short = texts[words <= DEMO_MAX_WORDS]
    return short if len(short) >= k else texts.loc[words.sort_values(kind="stable").index[:k]]
