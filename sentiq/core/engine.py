"""The inference engine: a shared prompt prefix encoded once and reused through its key/value cache,
forward passes, label log-probabilities and generation.

Every prompt is `prefix + body`: the prefix (system prompt, instruction, demonstrations) is the same
for all texts of a call, the body is the text-specific rest. Bodies are right-padded, so no real token
ever attends to padding and no attention mask is needed while scoring; the vocabulary head runs only
at the positions that are scored. Every forward pass runs under `torch.inference_mode`. Which texts
share a pass is `batching`'s business, how tokens are chosen `decoding`'s; the engine knows nothing of
datasets, labels or files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sentiq.core.answering import Answering, right_pad
from sentiq.core.batching import BatchPlanner, Done, default_fill, default_token_budget, gathered
from sentiq.core.heads import vocab_logprobs
from sentiq.core.models import LoadedModel, free_memory, load_model, peak_memory_bytes, sync
from sentiq.core.prefixes import PrefixCache
from sentiq.core.stages import StageClock
from sentiq.core.states import between_layers, first_layers, layer_outputs
from sentiq.errors import ResourceError
from sentiq.settings import ModelSettings

CARRIED_BATCHES = 8  # early exits: the hidden states carried between spans, in full batches' tokens


@dataclass
class Engine(Answering):
    lm: LoadedModel
    max_batch_tokens: int | None = None  # None: default_token_budget(device)
    max_batch_rows: int | None = None  # None: bounded by tokens only

    def __post_init__(self) -> None:
        self.model = self.lm.model
        self.tokenizer = self.lm.tokenizer
        self.device = self.lm.device
        kind = self.device.type
        budget = self.max_batch_tokens or default_token_budget(kind)
        self.clock = StageClock()  # host seconds per stage, for benchmarks
        self.prefixes = PrefixCache(self.model, self.device)
        self.planner = BatchPlanner(
            max_tokens=budget,
            max_rows=self.max_batch_rows,
            fill=default_fill(kind, budget),
            sync=functools.partial(sync, self.device),
            free_memory=functools.partial(free_memory, self.device),
            clock=self.clock,
        )
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.eos_ids = self.lm.stop_ids()

    # -- tokens ------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        with self.clock.stage("tokenize"):
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many texts in one call: a fast tokenizer encodes them in parallel."""
        with self.clock.stage("tokenize"):
            return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []

    def decode(self, ids: Sequence[int]) -> str:
        with self.clock.stage("tokenize"):
            return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # -- public API --------------------------------------------------------------------------------
    def score_batches(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]],
        firsts: Sequence[int] = (),
        states: Sequence[int] = (),
    ) -> Iterator[Done[np.ndarray]]:
        """log P(label | prefix + body) for every body and label, a batch at a time as each finishes:
        rows of shape (labels,) for the batch's bodies, then one column per token of `firsts`, its
        log-probability as the first token after the body (what a generated answer would start with),
        then, for each layer K of `states`, the hidden state at the answer position after K layers (as
        state_batches reads it), all read off the same pass.

        One forward pass per text when every label is a single token; otherwise one row per
        (text, label) pair, each label's tokens appended to the body and scored in that same pass.
        """
        single = all(len(lab) == 1 for lab in labels)
        extra = 0 if single else max(len(lab) for lab in labels)

        def work(idx: list[int]) -> np.ndarray:
            rows = [bodies[i] for i in idx]
            if not states:
                return self._score_batch(prefix, rows, labels, single, firsts).cpu().double().numpy()
            with layer_outputs(self.model, states) as kept:
                scores = self._score_batch(prefix, rows, labels, single, firsts).cpu().double().numpy()
            step = 1 if single else len(labels)  # a text's first row holds its answer position
            read = kept.at([i * step for i in range(len(rows))], [len(r) - 1 for r in rows])
            return np.concatenate([scores, read], axis=1)

        self.prefixes.kv(prefix)
        lengths = [len(b) + extra for b in bodies]
        yield from self.planner.run(lengths, work, rows_per_item=1 if single else len(labels), shared=len(prefix))

    def score(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]],
        firsts: Sequence[int] = (),
    ) -> np.ndarray:
        """score_batches gathered in input order: (texts, labels + firsts)."""
        return gathered(self.score_batches(prefix, bodies, labels, firsts), (len(bodies), len(labels) + len(firsts)))

    @property
    def depth(self) -> int:
        """The model's decoder layers."""
        return len(self.model.model.layers)

    @functools.cached_property
    def layer_parameters(self) -> int:
        """The parameters of one decoder layer (the layers are alike): what each token pays per layer."""
        return sum(p.numel() for p in self.model.model.layers[0].parameters())

    def state_batches(
        self, prefix: Sequence[int], bodies: Sequence[Sequence[int]], layers: int | None = None
    ) -> Iterator[Done[np.ndarray]]:
        """The hidden state at each body's last position (where the answer's first token is predicted)
        after the first `layers` decoder layers and the model's final norm (None: every layer), a batch
        at a time: rows (hidden,) in float32. Fewer layers run fewer layers, and no vocabulary head runs."""
        self.prefixes.kv(prefix)

        @torch.inference_mode()
        def work(idx: list[int]) -> np.ndarray:
            ids, lengths = right_pad([bodies[i] for i in idx], self.pad_id, self.device)
            with first_layers(self.model, layers):
                hidden = self._hidden(ids, self.prefixes.for_batch(prefix, len(idx)))
            return hidden[torch.arange(len(idx), device=self.device), lengths - 1].float().cpu().numpy()

        yield from self.planner.run([len(b) for b in bodies], work, shared=len(prefix))

    def exit_batches(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        exits: Sequence[int],
        leave: Callable[[int, np.ndarray], np.ndarray],
    ) -> Iterator[Done[np.ndarray]]:
        """Early exits: the texts run to the first of `exits` (layers, increasing; the last exit takes
        every text still running), where `leave(j, states)` says from the states at the answer position
        (as state_batches reads them) which texts stop at exit j; the rest carry on from their hidden
        states through the next span of layers, no layer run twice. The texts still running are batched
        anew for each span (the planner fills each batch from all of them), a group of texts at a time
        so that the hidden states carried stay within CARRIED_BATCHES batches' tokens. Rows, a batch of
        leavers at a time: the exit's position in `exits`, then the state it left with."""
        self.prefixes.kv(prefix)
        lengths = [len(b) for b in bodies]
        for group in _groups(lengths, CARRIED_BATCHES * self.planner.max_tokens):
            yield from self._exit_group(prefix, bodies, group, exits, leave)

    def _exit_group(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        going: list[int],
        exits: Sequence[int],
        leave: Callable[[int, np.ndarray], np.ndarray],
    ) -> Iterator[Done[np.ndarray]]:
        """exit_batches for the texts `going`, span by span: (texts' own length, hidden) kept per text."""
        carried: dict[int, torch.Tensor] = {}  # text: its hidden states (its tokens, hidden) after the last span
        spent = dict.fromkeys(going, 0.0)  # text: its share of the seconds of every batch it was in
        start = 0
        for j, stop in enumerate(exits):
            last = j == len(exits) - 1

            @torch.inference_mode()
            def work(rows: list[int], running: list[int] = going, start: int = start, stop: int = stop) -> np.ndarray:
                texts = [running[r] for r in rows]
                if start == 0:
                    given = {"input_ids": right_pad([bodies[t] for t in texts], self.pad_id, self.device)[0]}
                else:
                    given = {
                        "inputs_embeds": torch.nn.utils.rnn.pad_sequence([carried[t] for t in texts], batch_first=True)
                    }
                with between_layers(self.model, start, stop) as norm:
                    cache = self.prefixes.for_batch(prefix, len(texts))
                    out = self.model.model(cache=cache, use_cache=True, **given).last_hidden_state
                ends = torch.tensor([len(bodies[t]) - 1 for t in texts], device=self.device)
                states = norm(out[torch.arange(len(texts), device=self.device), ends])
                for k, t in enumerate(texts):
                    carried[t] = out[k, : len(bodies[t])]
                return states.float().cpu().numpy()

            for done in self.planner.run([len(bodies[t]) for t in going], work, shared=len(prefix)):
                texts = [going[r] for r in done.indices]
                for t in texts:
                    spent[t] += done.seconds / len(texts)
                stops = np.ones(len(texts), dtype=bool) if last else np.asarray(leave(j, done.result), dtype=bool)
                leaving = [t for t, s in zip(texts, stops) if s]
                for t in leaving:
                    carried.pop(t)
                if leaving:
                    rows = np.hstack([np.full((len(leaving), 1), j), done.result[stops]])
                    yield Done(leaving, rows, sum(spent[t] for t in leaving))
            going, start = [t for t in going if t in carried], stop
            if not going:
                return

    def warm_up(self, prefix: Sequence[int]) -> None:
        """One small pass so that one-time costs (kernels, allocator, prefix cache) stay out of timings."""
        try:
            self.prefixes.kv(prefix)
            self._score_batch(prefix, [self.encode(" warm up")], [[self.pad_id]], True)
        except torch.OutOfMemoryError:
            raise ResourceError(
                f"out of memory on one text of two words while warming up: the model does not fit on {self.device} "
                "next to what else runs there; use a smaller model or dtype"
            ) from None
        sync(self.device)

    # -- forward passes ----------------------------------------------------------------------------
    def _hidden(self, ids: torch.Tensor, cache: Any, **kwargs: Any) -> torch.Tensor:
        out = self.model.model(input_ids=ids, cache=cache, use_cache=True, **kwargs)
        return out.last_hidden_state  # (batch, seq, hidden)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        return vocab_logprobs(self.model.lm_head, hidden)

    @torch.inference_mode()
    def _score_batch(
        self,
        prefix: Sequence[int],
        rows: list[Sequence[int]],
        labels: Sequence[Sequence[int]],
        single: bool,
        firsts: Sequence[int] = (),
    ) -> torch.Tensor:
        n_labels = len(labels)
        if single:
            ids, lengths = right_pad(rows, self.pad_id, self.device)
            hidden = self._hidden(ids, self.prefixes.for_batch(prefix, len(rows)))
            last = hidden[torch.arange(len(rows), device=self.device), lengths - 1]  # (batch, hidden)
            label_ids = torch.tensor([lab[0] for lab in labels] + list(firsts), device=self.device)
            return self._head(last)[:, label_ids]  # (batch, labels + firsts)
        seqs = [list(r) + list(lab) for r in rows for lab in labels]
        ids, _ = right_pad(seqs, self.pad_id, self.device)
        hidden = self._hidden(ids, self.prefixes.for_batch(prefix, len(seqs)))
        row_idx, pos_idx, targets = [], [], []
        for r, body in enumerate(rows):
            for j, lab in enumerate(labels):
                for t, token in enumerate(lab):
                    row_idx.append(r * n_labels + j)
                    pos_idx.append(len(body) - 1 + t)  # the position that predicts token t
                    targets.append(token)
        as_t = lambda xs: torch.tensor(xs, device=self.device)  # noqa: E731
        logp = self._head(hidden[as_t(row_idx), as_t(pos_idx)])  # (scored positions, vocab)
        picked = logp[torch.arange(len(targets), device=self.device), as_t(targets)]
        total = torch.zeros(len(seqs), device=self.device).index_add_(0, as_t(row_idx), picked)
        if not firsts:
            return total.view(len(rows), n_labels)
        ends = as_t([len(body) - 1 for body in rows])  # each text's first label row holds its next-token state
        first = self._head(hidden[as_t(list(range(0, len(seqs), n_labels))), ends])[:, as_t(list(firsts))]
        return torch.cat([total.view(len(rows), n_labels), first], dim=1)

    def peak_memory_bytes(self) -> int | None:
        return peak_memory_bytes(self.device)


def _groups(lengths: Sequence[int], tokens: int) -> Iterator[list[int]]:
    """The texts longest first (as the planner orders them, so that a group's batches hold texts of
    like lengths), cut into consecutive groups of at most `tokens` tokens (a longer text is a group of
    its own)."""
    group: list[int] = []
    held = 0
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        if group and held + n > tokens:
            yield group
            group, held = [], 0
        group.append(i)
        held += n
    if group:
        yield group


def load_engine(settings: ModelSettings) -> Engine:
    """The model of `settings` loaded, behind an engine with its batch limits."""
    lm = load_model(settings.source, settings.device, settings.dtype)
    return Engine(lm, max_batch_tokens=settings.max_batch_tokens, max_batch_rows=settings.batch_size)
