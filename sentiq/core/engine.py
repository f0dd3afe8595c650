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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sentiq.core.batching import BatchPlanner, Done, default_fill, default_token_budget, gathered
from sentiq.core.decoding import Sampling, decode, mix_first
from sentiq.core.heads import vocab_logprobs
from sentiq.core.models import LoadedModel, free_memory, load_model, peak_memory_bytes, sync
from sentiq.core.prefixes import KV, PrefixCache
from sentiq.core.stages import StageClock
from sentiq.core.states import first_layers, layer_output
from sentiq.errors import ResourceError
from sentiq.settings import ModelSettings


def _right_pad(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, seq) token ids padded on the right, and the lengths."""
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return ids.to(device), lengths.to(device)


@dataclass
class Engine:
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
        state: int | None = None,
    ) -> Iterator[Done[np.ndarray]]:
        """log P(label | prefix + body) for every body and label, a batch at a time as each finishes:
        rows of shape (labels,) for the batch's bodies, then one column per token of `firsts`, its
        log-probability as the first token after the body (what a generated answer would start with),
        then, with `state` = K, the hidden state at the answer position after K layers (as state_batches
        reads it), all read off the same pass.

        One forward pass per text when every label is a single token; otherwise one row per
        (text, label) pair, each label's tokens appended to the body and scored in that same pass.
        """
        single = all(len(lab) == 1 for lab in labels)
        extra = 0 if single else max(len(lab) for lab in labels)

        def work(idx: list[int]) -> np.ndarray:
            rows = [bodies[i] for i in idx]
            if state is None:
                return self._score_batch(prefix, rows, labels, single, firsts).cpu().double().numpy()
            with layer_output(self.model, state) as kept:
                scores = self._score_batch(prefix, rows, labels, single, firsts).cpu().double().numpy()
            step = 1 if single else len(labels)  # a text's first row holds its answer position
            states = kept.at([i * step for i in range(len(rows))], [len(r) - 1 for r in rows])
            return np.concatenate([scores, states], axis=1)

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

    def generate_batches(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        samplings: Sequence[Sampling],
        seeds: Sequence[int] | None = None,
        first_mix: tuple[list[int], np.ndarray] | None = None,
    ) -> Iterator[Done[list[list[list[str]]]]]:
        """For each decoding setting, `num_samples` answers per body, a batch at a time:
        result[setting][body of the batch][sample]. Every setting decodes from the same encoded prompt,
        so a grid of settings costs one prompt pass. `seeds` (one per body) make sampled answers
        independent of how texts were batched. `first_mix` (label tokens, their log-probabilities per
        body from another view) is averaged into the first step (see mix_first)."""
        seeds = list(seeds) if seeds is not None else list(range(len(bodies)))

        def work(idx: list[int]) -> list[list[list[str]]]:
            mix = (first_mix[0], torch.as_tensor(first_mix[1][idx])) if first_mix is not None else None
            return self._generate_batch(prefix, [bodies[i] for i in idx], samplings, [seeds[i] for i in idx], mix)

        self.prefixes.kv(prefix)
        longest_answer = max(s.max_new_tokens for s in samplings)
        lengths = [len(b) + longest_answer for b in bodies]
        samples = max(s.num_samples for s in samplings)
        yield from self.planner.run(lengths, work, rows_per_item=samples, shared=len(prefix))

    @property
    def depth(self) -> int:
        """The model's decoder layers."""
        return len(self.model.model.layers)

    def state_batches(
        self, prefix: Sequence[int], bodies: Sequence[Sequence[int]], layers: int | None = None
    ) -> Iterator[Done[np.ndarray]]:
        """The hidden state at each body's last position (where the answer's first token is predicted)
        after the first `layers` decoder layers and the model's final norm (None: every layer), a batch
        at a time: rows (hidden,) in float32. Fewer layers run fewer layers, and no vocabulary head runs."""
        self.prefixes.kv(prefix)

        @torch.inference_mode()
        def work(idx: list[int]) -> np.ndarray:
            ids, lengths = _right_pad([bodies[i] for i in idx], self.pad_id, self.device)
            with first_layers(self.model, layers):
                hidden = self._hidden(ids, self.prefixes.for_batch(prefix, len(idx)))
            return hidden[torch.arange(len(idx), device=self.device), lengths - 1].float().cpu().numpy()

        yield from self.planner.run([len(b) for b in bodies], work, shared=len(prefix))

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
            ids, lengths = _right_pad(rows, self.pad_id, self.device)
            hidden = self._hidden(ids, self.prefixes.for_batch(prefix, len(rows)))
            last = hidden[torch.arange(len(rows), device=self.device), lengths - 1]  # (batch, hidden)
            label_ids = torch.tensor([lab[0] for lab in labels] + list(firsts), device=self.device)
            return self._head(last)[:, label_ids]  # (batch, labels + firsts)
        seqs = [list(r) + list(lab) for r in rows for lab in labels]
        ids, _ = _right_pad(seqs, self.pad_id, self.device)
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

    @torch.inference_mode()
    def _generate_batch(
        self,
        prefix: Sequence[int],
        rows: list[Sequence[int]],
        samplings: Sequence[Sampling],
        seeds: list[int],
        mix: tuple[list[int], torch.Tensor] | None = None,
    ) -> list[list[list[str]]]:
        ids, lengths = _right_pad(rows, self.pad_id, self.device)
        cache = self.prefixes.for_batch(prefix, len(rows))
        hidden = self._hidden(ids, cache)
        first = self._head(hidden[torch.arange(len(rows), device=self.device), lengths - 1])  # (batch, vocab)
        if mix is not None:
            first = mix_first(first, *mix)
        body_mask = torch.arange(ids.shape[1], device=self.device)[None, :] < lengths[:, None]
        prefix_mask = torch.ones(len(rows), len(prefix), dtype=torch.bool, device=self.device)
        mask = torch.cat([prefix_mask, body_mask], dim=1).long()  # (batch, prefix + body); 0 marks padding
        prompt_kv = [(layer.keys, layer.values) for layer in cache.layers]
        return [self._decode(prompt_kv, first, lengths, mask, len(prefix), s, seeds) for s in samplings]

    def _decode(
        self,
        prompt_kv: KV,
        first: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor,
        prefix_len: int,
        sampling: Sampling,
        seeds: list[int],
    ) -> list[list[str]]:
        """Answers from an encoded prompt; its cache is copied, so several settings can share it."""
        from transformers import DynamicCache

        n = sampling.num_samples
        cache = DynamicCache(ddp_cache_data=prompt_kv, config=self.model.config)
        if n > 1:  # the samples share the prompt's cache
            cache.batch_repeat_interleave(n)
            first, lengths, mask = (t.repeat_interleave(n, dim=0) for t in (first, lengths, mask))

        def step(token: torch.Tensor, i: int) -> torch.Tensor:
            nonlocal mask
            mask = torch.cat([mask, torch.ones(len(token), 1, dtype=torch.long, device=self.device)], dim=1)
            position = (prefix_len + lengths + i).unsqueeze(1)  # (rows, 1)
            hidden = self._hidden(token.unsqueeze(1), cache, attention_mask=mask, position_ids=position)
            return self._head(hidden[:, -1])

        texts = [self.decode(t) for t in decode(first, step, sampling, seeds, self.eos_ids, self.pad_id)]
        return [texts[i : i + n] for i in range(0, len(texts), n)]

    def peak_memory_bytes(self) -> int | None:
        return peak_memory_bytes(self.device)


def load_engine(settings: ModelSettings) -> Engine:
    """The model of `settings` loaded, behind an engine with its batch limits."""
    lm = load_model(settings.source, settings.device, settings.dtype)
    return Engine(lm, max_batch_tokens=settings.max_batch_tokens, max_batch_rows=settings.batch_size)
