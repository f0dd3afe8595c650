"""The four classification methods: texts in, one Prediction per text out, through the engine. Several
prompts make an ensemble: scoring methods average their label log-probabilities, generation methods
vote across them. Calibration divides a label prior out of the scores."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sentiq.core.engine import Engine
from sentiq.errors import OptionError
from sentiq.methods.binding import Bound, check_first_tokens, first_tokens
from sentiq.methods.calibration import calibration_record, log_softmax, prior_inputs, softmax
from sentiq.methods.demonstrations import draw_demonstrations
from sentiq.methods.generation import decoding, vote
from sentiq.methods.prompts import Prompt, load_prompts
from sentiq.methods.texts import endings, prepare
from sentiq.predictions import Prediction, top_label
from sentiq.settings import MethodConfig

OnDone = Callable[[list[int], list[Prediction], float], None]  # (indices, their predictions, seconds)


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
        self.prompts = self.prompts or load_prompts(self.config.prompt)
        self.labels = label_set(self.prompts)
        if self.config.method == "k-shot":
            self.demos = draw_demonstrations(self.pool, self.config.k, self.config.demo_draw, self.labels)
        self.bound = [Bound.bind(self.engine, p, self.demos) for p in self.prompts]
        if not self.config.scores_labels:
            for b in self.bound:
                check_first_tokens(b, self.engine)

    def warm_up(self) -> None:
        for b in self.bound:
            self.engine.warm_up(b.prefix)

    def predict(self, texts: Sequence[str], on_done: OnDone | None = None) -> list[Prediction]:
        fitted = prepare(self.engine, texts, self.config.max_tokens)
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

    def label_logprobs(
        self, texts: Sequence[str], tokens: np.ndarray | None = None, on_batch: Callable | None = None
    ) -> np.ndarray:
        """log P(label | prompt, text), normalised over the labels and averaged over the prompts and, with
        `tail`, over each text and its ending: (texts, labels). `on_batch(idx, their rows, seconds)` after
        each batch of the last pass (the whole texts, last prompt), which covers every text."""
        total = np.zeros((len(texts), len(self.labels)))
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

    def _predict_scores(self, texts: list[str], tokens: np.ndarray, finish: OnDone) -> None:
        if self.prior is None and self.config.calibrated:
            inputs, where = prior_inputs(self.config.calibrate, texts, self.config.seed)
            if self.config.calibrate != "batch":
                self._set_prior(softmax(self.label_logprobs(inputs)).mean(axis=0), where)
            else:  # the prior is these texts' own mean: their labels wait for all their scores
                spent: list[float] = []
                logp = self.label_logprobs(texts, tokens, lambda idx, rows, seconds: spent.append(seconds))
                self._set_prior(softmax(logp).mean(axis=0), where)
                finish(list(range(len(texts))), self._scored(logp), sum(spent))
                return
        self.label_logprobs(texts, tokens, lambda idx, rows, seconds: finish(idx, self._scored(rows), seconds))

    def _scored(self, logp: np.ndarray) -> list[Prediction]:
        raw = softmax(logp)
        calibrated = self.prior is not None and self.config.calibrated
        probs = softmax(logp - np.log(self.prior)) if calibrated else raw
        predictions = []
        for p, r in zip(probs, raw):
            label, tie = top_label(p, self.labels)
            predictions.append(Prediction.of(label, p, self.labels, r if calibrated else None, answer=tie))
        return predictions

    def _set_prior(self, prior: np.ndarray, where: str) -> None:
        self.prior = prior
        if self.on_prior is not None:
            self.on_prior(calibration_record(self.config.calibrate, prior, where, self.labels))

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
                    finish(idx, [vote(answers[i], self.labels) for i in idx], float(seconds[idx].sum()))

            sampling = decoding(self.config, priors[j])
            mix = (b.first_ids, endings[j]) if endings[j] is not None else None
            self.engine.generate(b.prefix, bodies, [sampling], self.seeds(texts), batch_done, mix)

    def _ending_first_tokens(self, b: Bound, texts: Sequence[str], tokens: np.ndarray | None = None) -> np.ndarray:
        """log P(first token of each label word | prompt, the text's last `tail` words), normalised over
        the labels: (texts, labels), NaN for texts no longer than that."""
        out = np.full((len(texts), len(self.labels)), np.nan)
        which, ends = endings(texts, self.config.tail)
        if which:
            bodies = b.bodies(self.engine, ends)
            out[which] = log_softmax(self.engine.score(b.prefix, bodies, first_tokens(b)))
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
            inputs, where = prior_inputs(self.config.calibrate, texts, self.config.seed)
            priors = []
            for b, ending in zip(self.bound, endings):
                first = log_softmax(self.engine.score(b.prefix, b.bodies(self.engine, inputs), first_tokens(b)))
                if self.config.tail:
                    ending = ending if inputs is texts else self._ending_first_tokens(b, inputs)
                    first = np.where(np.isnan(ending), first, (first + ending) / 2)
                priors.append(softmax(first))
            self._set_prior(np.array([p.mean(axis=0) for p in priors]), where)
        assert self.prior is not None
        return [tuple(zip(b.first_ids, np.log(p).tolist())) for b, p in zip(self.bound, np.atleast_2d(self.prior))]

    def seeds(self, texts: Sequence[str]) -> list[int]:
        """One seed per text, from the run seed and the text itself: a text's samples do not depend on
        its position or batch."""
        return [self.config.seed * 1_000_003 + zlib.crc32(t.encode("utf-8")) for t in texts]


def label_set(prompts: Sequence[Prompt]) -> tuple[str, ...]:
    """The label set the prompts share: an ensemble averages or votes over the same labels."""
    labels = prompts[0].labels
    other = next((p for p in prompts if p.labels != labels), None)
    if other is not None:
        raise OptionError(
            f"prompts '{prompts[0].ref}' and '{other.ref}' have other label sets ({', '.join(labels)} / "
            f"{', '.join(other.labels)}): an ensemble needs one"
        )
    return labels
