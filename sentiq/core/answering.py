"""Generation, the part of the engine that answers: every decoding setting decodes from one encoded
prompt (its key/value cache copied per setting), a batch at a time. A mixin of the Engine, which provides
the forward pass, the vocabulary head, the prefix cache and the batch planner it uses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sentiq.core.batching import BatchPlanner, Done
from sentiq.core.decoding import Answer, Sampling, decode, mix_first
from sentiq.core.prefixes import KV, PrefixCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def right_pad(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, seq) token ids padded on the right, and the lengths."""
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return ids.to(device), lengths.to(device)


class Answering:
    """generate_batches for the Engine."""

    model: PreTrainedModel
    device: torch.device
    pad_id: int
    eos_ids: list[int]
    prefixes: PrefixCache
    planner: BatchPlanner

    def _hidden(self, ids: torch.Tensor, cache: Any, **kwargs: Any) -> torch.Tensor: ...
    def _head(self, hidden: torch.Tensor) -> torch.Tensor: ...
    def decode(self, ids: Sequence[int]) -> str: ...

    def generate_batches(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        samplings: Sequence[Sampling],
        seeds: Sequence[int] | None = None,
        first_mix: tuple[list[int], np.ndarray] | None = None,
        watch: Sequence[int] = (),
    ) -> Iterator[Done[list[list[list[Answer]]]]]:
        """For each decoding setting, `num_samples` answers per body, a batch at a time:
        result[setting][body of the batch][sample]. Every setting decodes from the same encoded prompt,
        so a grid of settings costs one prompt pass. `seeds` (one per body) make sampled answers
        independent of how texts were batched. `first_mix` (label tokens, their log-probabilities per
        body from another view) is averaged into the first step (see mix_first). Each answer keeps the
        `watch` tokens' log-probabilities where it first chose one of them (decode)."""
        seeds = list(seeds) if seeds is not None else list(range(len(bodies)))

        def work(idx: list[int]) -> list[list[list[Answer]]]:
            mix = (first_mix[0], torch.as_tensor(first_mix[1][idx])) if first_mix is not None else None
            rows = [bodies[i] for i in idx]
            return self._generate_batch(prefix, rows, samplings, [seeds[i] for i in idx], mix, watch)

        self.prefixes.kv(prefix)
        longest_answer = max(s.max_new_tokens for s in samplings)
        lengths = [len(b) + longest_answer for b in bodies]
        samples = max(s.num_samples for s in samplings)
        yield from self.planner.run(lengths, work, rows_per_item=samples, shared=len(prefix))

    @torch.inference_mode()
    def _generate_batch(
        self,
        prefix: Sequence[int],
        rows: list[Sequence[int]],
        samplings: Sequence[Sampling],
        seeds: list[int],
        mix: tuple[list[int], torch.Tensor] | None = None,
        watch: Sequence[int] = (),
    ) -> list[list[list[Answer]]]:
        ids, lengths = right_pad(rows, self.pad_id, self.device)
        cache = self.prefixes.for_batch(prefix, len(rows))
        hidden = self._hidden(ids, cache)
        first = self._head(hidden[torch.arange(len(rows), device=self.device), lengths - 1])  # (batch, vocab)
        if mix is not None:
            first = mix_first(first, *mix)
        body_mask = torch.arange(ids.shape[1], device=self.device)[None, :] < lengths[:, None]
        prefix_mask = torch.ones(len(rows), len(prefix), dtype=torch.bool, device=self.device)
        mask = torch.cat([prefix_mask, body_mask], dim=1).long()  # (batch, prefix + body); 0 marks padding
        prompt_kv = [(layer.keys, layer.values) for layer in cache.layers]
        return [self._decode(prompt_kv, first, lengths, mask, len(prefix), s, seeds, watch) for s in samplings]

    def _decode(
        self,
        prompt_kv: KV,
        first: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor,
        prefix_len: int,
        sampling: Sampling,
        seeds: list[int],
        watch: Sequence[int],
    ) -> list[list[Answer]]:
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

        tokens, decided = decode(first, step, sampling, seeds, self.eos_ids, self.pad_id, watch)
        answers = [Answer(self.decode(t), d) for t, d in zip(tokens, decided)]
        return [answers[i : i + n] for i in range(0, len(answers), n)]
