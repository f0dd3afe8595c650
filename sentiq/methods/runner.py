"""The four classification methods run on an engine: texts in, a stream of finished batches out, each
with its texts' predictions. Several prompts make an ensemble: scoring methods average their label
log-probabilities, generation methods vote across them. Calibration divides a label prior out of the
scores (calibration.calibrated_predictions); votes are counted by generation.vote: both pure functions of
what the engine gave."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from sentiq.abstention import abstained
from sentiq.core.batching import Done, gathered
from sentiq.core.decoding import Answer
from sentiq.core.engine import Engine
from sentiq.io.fits import model_digest
from sentiq.methods.binding import Bound, check_first_tokens, deciding_tokens, first_tokens
from sentiq.methods.calibration import (
    calibrated_predictions,
    calibration_record,
    fitted_predictions,
    log_softmax,
    prior_inputs,
    softmax,
)
from sentiq.methods.generation import Voted, decided_probs, decoding, vote
from sentiq.methods.plan import MethodPlan
from sentiq.methods.staged import load_then, staged_batches
from sentiq.methods.texts import endings, prepare
from sentiq.predictions import Prediction
from sentiq.results import CalibrationRecord


@dataclass(frozen=True)
class Batch:
    """Texts whose predictions are done: their positions in the call's texts, their predictions, the
    seconds their passes took and, on the first batch after a calibration prior was estimated, its
    record (what the prior is and what it was estimated on)."""

    indices: list[int]
    predictions: list[Prediction]
    seconds: float
    calibration: CalibrationRecord | None = None  # on the batch after the prior was estimated


class MethodRunner:
    """A method's plan bound to an engine: its prompts rendered and their prefixes encoded once. `prior`
    fixes the calibration prior (a resumed run's); otherwise it is estimated when first needed, kept for
    later calls, and its record rides on the next batch. Made by make_runner."""

    def __init__(self, engine: Engine, plan: MethodPlan, prior: np.ndarray | None = None) -> None:
        self.engine, self.plan, self.prior = engine, plan, prior
        self.config, self.labels, self.label_set = plan.config, plan.labels, plan.label_set
        self.calibration: CalibrationRecord | None = None  # the record of the prior, once estimated
        self.bound = [Bound.bind(engine, p, plan.demos) for p in plan.prompts]
        if plan.fit is not None:
            lm = engine.lm
            plan.fit.check_model(model_digest(lm.source.kind, lm.source.ref, lm.revision), lm.source.label)
        self.then: tuple[Engine, Bound] | None = None  # a cascade's second model, loaded once with the runner
        if plan.exits and plan.fit is not None and plan.fit.then is not None:
            second = load_then(engine, plan.fit.then)
            self.then = second, Bound.bind(second, plan.prompts[0], plan.demos)
        if not self.config.scores_labels:
            for b in self.bound:
                check_first_tokens(b, engine)

    def predict_batches(self, texts: Sequence[str]) -> Iterator[Batch]:
        """Every text's prediction, a batch at a time as its passes finish (longest texts first); no
        texts, no batch."""
        if not texts:
            return
        fitted = prepare(self.engine, texts, self.config.max_tokens)
        cleaned = [t for t, _ in fitted]
        tokens = np.zeros(len(texts), dtype=np.int64)
        made = self._scored(cleaned, tokens) if self.config.scores_labels else self._generated(cleaned, tokens)
        threshold = self.plan.threshold
        for batch in made:
            with self.engine.clock.stage("post-process"):
                done = [
                    replace(p, tokens=int(tokens[i]), truncated=fitted[i][1])
                    for i, p in zip(batch.indices, batch.predictions)
                ]
                done = done if threshold is None else [abstained(p, threshold.confidence) for p in done]
            yield replace(batch, predictions=done)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """predict_batches gathered in the texts' order."""
        out: list[Prediction | None] = [None] * len(texts)
        for batch in self.predict_batches(texts):
            for i, p in zip(batch.indices, batch.predictions):
                out[i] = p
        return [p for p in out if p is not None]

    def label_logprob_batches(self, texts: Sequence[str], tokens: np.ndarray | None = None) -> Iterator[Done]:
        """log P(label | prompt, text), normalised over the labels and averaged over the prompts and, with
        `tail`, over each text and its ending: rows (labels,) a batch at a time, as the last pass (the
        whole texts, last prompt), which covers every text, finishes each. `tokens` counts each text's."""
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
            for done in self.engine.score_batches(b.prefix, bodies, b.label_ids):
                idx = [which[r] for r in done.indices]
                total[idx] += log_softmax(done.result)
                members[idx] += 1
                seconds[idx] += done.seconds / max(1, len(idx))
                if j == len(passes) - 1:
                    yield Done(idx, total[idx] / members[idx, None], float(seconds[idx].sum()))

    def label_logprobs(self, texts: Sequence[str], tokens: np.ndarray | None = None) -> np.ndarray:
        """label_logprob_batches gathered: (texts, labels)."""
        return gathered(self.label_logprob_batches(texts, tokens), (len(texts), len(self.labels)))

    def feature_batches(self, texts: Sequence[str], layers: Sequence[int]) -> Iterator[Done]:
        """What a fit learns from, in one pass per text, a batch at a time: rows of the label
        log-probabilities (normalised over the labels) and then the state after each of `layers` layers
        at the answer position."""
        (b,) = self.bound
        bodies = b.bodies(self.engine, [t for t, _ in prepare(self.engine, texts, self.config.max_tokens)])
        n = len(self.labels)
        for done in self.engine.score_batches(b.prefix, bodies, b.label_ids, states=layers):
            yield replace(done, result=np.hstack([log_softmax(done.result[:, :n]), done.result[:, n:]]))

    def probe_states(self, texts: Sequence[str]) -> Iterator[Done]:
        """The state each text's probe reads (after the fit's layers, at the answer position), a batch at
        a time: what the probe's predictions, and suggestions of texts to label, are made from."""
        fit = self.plan.fit
        assert fit is not None
        (b,) = self.bound
        bodies = b.bodies(self.engine, [t for t, _ in prepare(self.engine, texts, self.config.max_tokens)])
        yield from self.engine.state_batches(b.prefix, bodies, fit.layer)

    def _scored(self, texts: list[str], tokens: np.ndarray) -> Iterator[Batch]:
        if self.config.method == "probe":
            yield from self._probed(texts, tokens)
            return
        record = None
        if self.prior is None and self.config.calibrated:
            inputs, where = prior_inputs(self.config.calibrate, texts, self.config.seed)
            if self.config.calibrate == "batch":  # the prior is these texts' own mean: their labels wait for it
                done = list(self.label_logprob_batches(texts, tokens))
                logp = gathered(done, (len(texts), len(self.labels)))
                record = self._estimated(softmax(logp).mean(axis=0), where)
                everything = list(range(len(texts)))
                yield Batch(everything, self._predictions(logp), sum(d.seconds for d in done), record)
                return
            record = self._estimated(softmax(self.label_logprobs(inputs)).mean(axis=0), where)
        for done in self.label_logprob_batches(texts, tokens):
            yield Batch(done.indices, self._predictions(done.result), done.seconds, record)
            record = None

    def _predictions(self, logp: np.ndarray) -> list[Prediction]:
        if self.config.calibrate == "fitted":
            assert self.plan.fit is not None
            return fitted_predictions(self.plan.fit.calibration.logprobs(logp), logp, self.labels)
        prior = self.prior if self.config.calibrated else None
        return calibrated_predictions(logp, prior, self.labels)

    def _probed(self, texts: list[str], tokens: np.ndarray) -> Iterator[Batch]:
        """The fit's probe on each text's state at the answer position, after as many layers as it was
        fitted on (the rest of the model, and its vocabulary head, are not run); with stages, at the first
        stage whose probe is sure of the text (methods.staged)."""
        fit = self.plan.fit
        assert fit is not None
        (b,) = self.bound
        bodies = b.bodies(self.engine, texts)
        tokens += [len(x) for x in bodies]
        if self.plan.exits:
            for done in staged_batches(self.engine, b, texts, bodies, fit, self.labels, self.then):
                yield Batch(done.indices, done.result, done.seconds)
            return
        for done in self.engine.state_batches(b.prefix, bodies, fit.layer):
            made = fitted_predictions(fit.probe.logprobs(done.result), None, self.labels)
            yield Batch(done.indices, made, done.seconds)

    def _estimated(self, prior: np.ndarray, where: str) -> CalibrationRecord:
        """Keep a prior estimated now for later calls; its record."""
        self.prior = prior
        self.calibration = calibration_record(self.config.calibrate, prior, where, self.labels)
        return self.calibration

    # -- generation --------------------------------------------------------------------------------

    def _generated(self, texts: list[str], tokens: np.ndarray) -> Iterator[Batch]:
        """Each prompt answers every text; the answers of all prompts (and samples) vote. With `tail`,
        the first tokens of the label words get, at the first step, the mean of the log-odds the whole
        text and its ending give them, as scoring averages the two views. Calibrated, each prompt's prior
        over those tokens is then divided out of the first step."""
        ends = [self._ending_first_tokens(b, texts, tokens) if self.config.tail else None for b in self.bound]
        record = None
        if self.config.calibrated and self.prior is None:
            record = self._first_token_priors(texts, ends)
        priors = self._first_step_priors() if self.config.calibrated else [()] * len(self.bound)
        answers: list[list[Voted]] = [[] for _ in texts]
        seconds = np.zeros(len(texts))
        sampled = self.config.method == "sampling"
        for j, b in enumerate(self.bound):
            bodies = b.bodies(self.engine, texts)
            tokens += [len(x) for x in bodies]
            mix = (b.first_ids, ends[j]) if ends[j] is not None else None
            sampling = decoding(self.config, priors[j])
            watch, names = deciding_tokens(b, self.engine)
            for done in self.engine.generate_batches(b.prefix, bodies, [sampling], self.seeds(texts), mix, watch):
                idx = done.indices
                seconds[idx] += done.seconds / max(1, len(idx))
                for i, per_text in zip(idx, done.result[0]):
                    answers[i] += [voted(b, a, names, len(self.labels)) for a in per_text]
                if j == len(self.bound) - 1:
                    made = [vote(answers[i], self.labels, sampled) for i in idx]
                    yield Batch(idx, made, float(seconds[idx].sum()), record)
                    record = None

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

    def _first_token_priors(self, texts: list[str], ends: list[np.ndarray | None]) -> CalibrationRecord:
        """Estimate, per prompt, the mean probability of each label word's first token as the first answer
        token over the calibration's inputs (for batch, a scoring pass over these texts before they are
        answered), their endings averaged in as the answers will have; its record."""
        inputs, where = prior_inputs(self.config.calibrate, texts, self.config.seed)
        priors = []
        for b, ending in zip(self.bound, ends):
            first = log_softmax(self.engine.score(b.prefix, b.bodies(self.engine, inputs), first_tokens(b)))
            if self.config.tail:
                ending = ending if inputs is texts else self._ending_first_tokens(b, inputs)
                first = np.where(np.isnan(ending), first, (first + ending) / 2)
            priors.append(softmax(first))
        return self._estimated(np.array([p.mean(axis=0) for p in priors]), where)

    def _first_step_priors(self) -> list[tuple[tuple[int, float], ...]]:
        """Per prompt, (first token of each label word, log prior), for the first decoding step."""
        assert self.prior is not None
        rows = np.atleast_2d(self.prior)
        return [tuple(zip(b.first_ids, np.log(p).tolist())) for b, p in zip(self.bound, rows)]

    def seeds(self, texts: Sequence[str]) -> list[int]:
        """One seed per text, from the run seed and the text itself: a text's samples do not depend on
        its position or batch."""
        return [self.config.seed * 1_000_003 + zlib.crc32(t.encode("utf-8")) for t in texts]


def voted(b: Bound, answer: Answer, names: Sequence[int], n_labels: int) -> Voted:
    """A generated answer as the vote counts it: its text, the label it names, its label probabilities."""
    return answer.text, b.prompt.parse(answer.text), decided_probs(answer.decided, names, n_labels)


def make_runner(engine: Engine, plan: MethodPlan, prior: np.ndarray | None = None) -> MethodRunner:
    """The one way to a runner: the plan bound to the engine, and a small pass made so that one-time
    costs (kernels, the prefix caches) stay out of the first batch's time."""
    runner = MethodRunner(engine, plan, prior)
    for b in runner.bound:
        engine.warm_up(b.prefix)
    if runner.then is not None:
        second, bound = runner.then
        second.warm_up(bound.prefix)
    return runner
