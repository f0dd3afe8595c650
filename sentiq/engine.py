"""The inference engine: token-budget batches over length-sorted texts, a shared prompt prefix encoded
once and reused through its key/value cache, label log-probabilities and generation.

Every prompt is `prefix + body`: the prefix (system prompt, instruction, demonstrations) is the same
for all texts of a call, the body is the text-specific rest. Bodies are right-padded, so no real token
ever attends to padding and no attention mask is needed while scoring; the vocabulary head runs only
at the positions that are scored. The engine knows nothing of datasets, labels or files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sentiq.errors import ResourceError
from sentiq.models import LoadedModel

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape (1, kv_heads, seq, head_dim)
OnBatch = Callable[[list[int], Any, float], None]  # (input indices done, their results, seconds) -> None


@dataclass
class BatchStat:
    rows: int
    tokens: int  # real (unpadded) body tokens in the batch
    padded: int  # rows x longest body
    seconds: float


@dataclass
class Sampling:
    """Decoding settings, always explicit: the model's own generation_config is never consulted."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 8
    num_samples: int = 1  # answers per text (self-consistency)
    seed: int = 0


def default_token_budget(device: torch.device) -> int:
    """Tokens per forward pass: large on GPUs (memory errors halve it), small on CPUs (no gain past it)."""
    return {"cuda": 65536, "mps": 8192}.get(device.type, 2048)


def plan_batches(
    lengths: Sequence[int], max_tokens: int, max_rows: int | None, slack: float = 0.1, shared: int = 0
) -> list[list[int]]:
    """Indices grouped into batches, longest first (memory errors surface at once), each within
    `max_tokens` once padded, counting per row the `shared` prefix tokens its cache copy holds. A
    text joins a batch only if padding wastes at most `slack` of the longest row: a tight length
    bucket costs nothing on a GPU and saves real work on a CPU."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            current = batches[-1]
            longest = lengths[current[0]]
            fits = (len(current) + 1) * (longest + shared) <= max_tokens
            fits = fits and (max_rows is None or len(current) < max_rows)
            if fits and lengths[i] >= (1 - slack) * longest:
                current.append(i)
                continue
        batches.append([i])
    return batches


def _right_pad(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, seq) token ids padded on the right, and the lengths."""
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return ids.to(device), lengths.to(device)


@dataclass
class Engine:
    lm: LoadedModel
    max_batch_tokens: int | None = None  # None: default_token_budget(device)
    max_batch_rows: int | None = None  # None: bounded by tokens only
    stats: list[BatchStat] = field(default_factory=list)
    _prefixes: dict[tuple[int, ...], KV] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = self.lm.model
        self.tokenizer = self.lm.tokenizer
        self.device = self.lm.device
        if self.max_batch_tokens is None:
            self.max_batch_tokens = default_token_budget(self.device)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        eos = {self.tokenizer.convert_tokens_to_ids("<|im_end|>"), self.tokenizer.eos_token_id}
        eos |= set(_as_list(self.model.generation_config.eos_token_id))
        self.eos_ids = sorted(t for t in eos if isinstance(t, int) and t >= 0)

    # -- tokens ------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # -- public API --------------------------------------------------------------------------------
    def score(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]],
        on_batch: OnBatch | None = None,
    ) -> np.ndarray:
        """log P(label | prefix + body) for every body and label: an array of shape (texts, labels).

        One forward pass per text when every label is a single token; otherwise one row per
        (text, label) pair, each label's tokens appended to the body and scored in that same pass.
        """
        single = all(len(lab) == 1 for lab in labels)
        extra = 0 if single else max(len(lab) for lab in labels)
        out = np.zeros((len(bodies), len(labels)), dtype=np.float64)

        def run(idx: list[int]) -> np.ndarray:
            rows = [bodies[i] for i in idx]
            out[idx] = self._score_batch(prefix, rows, labels, single).cpu().numpy()
            return out[idx]

        self._run_batches(
            prefix, [len(b) + extra for b in bodies], run, on_batch, rows_per_item=1 if single else len(labels)
        )
        return out

    def generate(
        self,
        prefix: Sequence[int],
        bodies: Sequence[Sequence[int]],
        samplings: Sequence[Sampling],
        seeds: Sequence[int] | None = None,
        on_batch: OnBatch | None = None,
    ) -> list[list[list[str]]]:
        """For each decoding setting, `num_samples` answers per body, in input order:
        result[setting][text][sample]. Every setting decodes from the same encoded prompt, so a grid
        of settings costs one prompt pass. `seeds` (one per body) make sampled answers independent
        of how texts were batched."""
        answers: list[list[list[str]]] = [[[] for _ in bodies] for _ in samplings]
        seeds = list(seeds) if seeds is not None else list(range(len(bodies)))

        def run(idx: list[int]) -> list[list[list[str]]]:
            got = self._generate_batch(prefix, [bodies[i] for i in idx], samplings, [seeds[i] for i in idx])
            for per_setting, batch_answers in zip(answers, got):
                for i, texts in zip(idx, batch_answers):
                    per_setting[i] = texts
            return got

        longest_answer = max(s.max_new_tokens for s in samplings)
        lengths = [len(b) + longest_answer for b in bodies]
        self._run_batches(prefix, lengths, run, on_batch, rows_per_item=max(s.num_samples for s in samplings))
        return answers

    def warm_up(self, prefix: Sequence[int]) -> None:
        """One small pass so that one-time costs (kernels, allocator, prefix cache) stay out of timings."""
        self._prefix_kv(prefix)
        self._score_batch(prefix, [self.encode(" warm up")], [[self.pad_id]], True)
        self._sync()

    # -- batching ----------------------------------------------------------------------------------
    def _run_batches(
        self,
        prefix: Sequence[int],
        lengths: list[int],
        run: Callable[[list[int]], Any],
        on_batch: OnBatch | None,
        rows_per_item: int,
    ) -> None:
        """Run `run` over token-budget batches; on a GPU memory error halve the budget and go on."""
        self._prefix_kv(prefix)
        pending = list(range(len(lengths)))
        while pending:
            budget = max(1, int(self.max_batch_tokens) // rows_per_item)
            rows = None if self.max_batch_rows is None else max(1, self.max_batch_rows // rows_per_item)
            plan = plan_batches([lengths[i] for i in pending], budget, rows, shared=len(prefix))
            batches = [[pending[j] for j in b] for b in plan]
            done: set[int] = set()
            for idx in batches:
                start = time.perf_counter()
                try:
                    with torch.inference_mode():
                        result = run(idx)
                except torch.OutOfMemoryError:
                    self._empty_cache()
                    if len(idx) == 1:  # a single text that does not fit: nothing left to shrink
                        raise ResourceError(
                            f"out of memory on one text of {lengths[idx[0]]} tokens: lower --max-tokens, "
                            "or use a smaller model or dtype"
                        ) from None
                    self.max_batch_tokens = max(1, int(self.max_batch_tokens) // 2)
                    break
                self._sync()
                seconds = time.perf_counter() - start
                longest = max(lengths[i] for i in idx)
                self.stats.append(BatchStat(len(idx), sum(lengths[i] for i in idx), longest * len(idx), seconds))
                done.update(idx)
                if on_batch is not None:
                    on_batch(idx, result, seconds)
            pending = [i for i in pending if i not in done]

    # -- forward passes ----------------------------------------------------------------------------
    def _prefix_kv(self, prefix: Sequence[int]) -> KV:
        key = tuple(prefix)
        if key not in self._prefixes and key:
            ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
            with torch.inference_mode():
                cache = self.model.model(input_ids=ids, use_cache=True).cache
            self._prefixes[key] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefixes.get(key, [])

    def _cache_for(self, prefix: Sequence[int], batch: int) -> Any:
        """A fresh cache holding the prefix for `batch` rows (expanded views; no copy until appended to)."""
        from transformers import DynamicCache

        kv = self._prefix_kv(prefix)
        if not kv:
            return DynamicCache(config=self.model.config)
        data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)

    def _hidden(self, ids: torch.Tensor, cache: Any, **kwargs: Any) -> torch.Tensor:
        out = self.model.model(input_ids=ids, cache=cache, use_cache=True, **kwargs)
        return out.last_hidden_state  # (batch, seq, hidden)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary log-probabilities in float32 for the given hidden states only."""
        return self.model.lm_head(hidden).float().log_softmax(dim=-1)

    def _score_batch(
        self, prefix: Sequence[int], rows: list[Sequence[int]], labels: Sequence[Sequence[int]], single: bool
    ) -> torch.Tensor:
        n_labels = len(labels)
        if single:
            ids, lengths = _right_pad(rows, self.pad_id, self.device)
            hidden = self._hidden(ids, self._cache_for(prefix, len(rows)))
            last = hidden[torch.arange(len(rows), device=self.device), lengths - 1]  # (batch, hidden)
            label_ids = torch.tensor([lab[0] for lab in labels], device=self.device)
            return self._head(last)[:, label_ids]  # (batch, labels)
        seqs = [list(r) + list(lab) for r in rows for lab in labels]
        ids, _ = _right_pad(seqs, self.pad_id, self.device)
        hidden = self._hidden(ids, self._cache_for(prefix, len(seqs)))
        row_idx, pos_idx, targets, owner = [], [], [], []
        for r, body in enumerate(rows):
            for j, lab in enumerate(labels):
                seq = r * n_labels + j
                for t, token in enumerate(lab):
                    row_idx.append(seq)
                    pos_idx.append(len(body) - 1 + t)  # the position that predicts token t
                    targets.append(token)
                    owner.append(seq)
        as_t = lambda xs: torch.tensor(xs, device=self.device)  # noqa: E731
        logp = self._head(hidden[as_t(row_idx), as_t(pos_idx)])  # (scored positions, vocab)
        picked = logp[torch.arange(len(targets), device=self.device), as_t(targets)]
        total = torch.zeros(len(seqs), device=self.device).index_add_(0, as_t(owner), picked)
        return total.view(len(rows), n_labels)

    def _generate_batch(
        self, prefix: Sequence[int], rows: list[Sequence[int]], samplings: Sequence[Sampling], seeds: list[int]
    ) -> list[list[list[str]]]:
        ids, lengths = _right_pad(rows, self.pad_id, self.device)
        cache = self._cache_for(prefix, len(rows))
        hidden = self._hidden(ids, cache)
        logp = self._head(hidden[torch.arange(len(rows), device=self.device), lengths - 1])  # (batch, vocab)
        body_mask = torch.arange(ids.shape[1], device=self.device)[None, :] < lengths[:, None]
        prefix_mask = torch.ones(len(rows), len(prefix), dtype=torch.bool, device=self.device)
        mask = torch.cat([prefix_mask, body_mask], dim=1).long()  # (batch, prefix + body); 0 marks padding
        prompt_kv = [(layer.keys, layer.values) for layer in cache.layers]
        return [self._decode(prompt_kv, logp, lengths, mask, len(prefix), s, seeds) for s in samplings]

    def _decode(
        self,
        prompt_kv: KV,
        logp: torch.Tensor,
        lengths: torch.Tensor,
        mask: torch.Tensor,
        prefix_len: int,
        sampling: Sampling,
        seeds: list[int],
    ) -> list[list[str]]:
        """Decode from an encoded prompt; its cache is copied, so several settings can share it."""
        from transformers import DynamicCache

        n, rows = sampling.num_samples, len(lengths)
        cache = DynamicCache(ddp_cache_data=prompt_kv, config=self.model.config)
        if n > 1:  # the samples share the prompt's cache
            cache.batch_repeat_interleave(n)
            logp, lengths, mask = (t.repeat_interleave(n, dim=0) for t in (logp, lengths, mask))
        choose = _Chooser(sampling, [s * 1_000_003 + j for s in seeds for j in range(n)], self.device)
        eos = torch.tensor(self.eos_ids, device=self.device)
        finished = torch.zeros(rows * n, dtype=torch.bool, device=self.device)
        produced: list[torch.Tensor] = []
        for step in range(sampling.max_new_tokens):
            token = choose(logp).masked_fill(finished, self.pad_id)
            produced.append(token)
            finished |= torch.isin(token, eos)
            if bool(finished.all()) or step == sampling.max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones(len(token), 1, dtype=torch.long, device=self.device)], dim=1)
            position = (prefix_len + lengths + step).unsqueeze(1)  # (rows, 1)
            hidden = self._hidden(token.unsqueeze(1), cache, attention_mask=mask, position_ids=position)
            logp = self._head(hidden[:, -1])
        tokens = torch.stack(produced, dim=1).tolist()  # (rows, steps)
        texts = [self.decode(_until_eos(t, self.eos_ids)) for t in tokens]
        return [texts[i * n : (i + 1) * n] for i in range(rows)]

    # -- device helpers ----------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def peak_memory_bytes(self) -> int | None:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return None


class _Chooser:
    """Next-token choice: argmax when greedy; otherwise transformers' temperature/top-k/top-p warpers
    and a draw from a per-row generator, so a text's samples do not depend on its batch."""

    def __init__(self, sampling: Sampling, seeds: list[int], device: torch.device) -> None:
        self.sampling = sampling
        self.generators = []
        self.warpers = None
        if sampling.do_sample:
            from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

            warpers: list[Any] = [TemperatureLogitsWarper(sampling.temperature)]
            if sampling.top_k:
                warpers.append(TopKLogitsWarper(sampling.top_k))
            if sampling.top_p is not None and sampling.top_p < 1.0:
                warpers.append(TopPLogitsWarper(sampling.top_p))
            self.warpers = LogitsProcessorList(warpers)
            self.generators = [torch.Generator(device=device).manual_seed(s % (2**63)) for s in seeds]

    def __call__(self, logp: torch.Tensor) -> torch.Tensor:
        if self.warpers is None:
            return logp.argmax(dim=-1)
        probs = self.warpers(None, logp).softmax(dim=-1)  # (rows, vocab)
        picks = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)]
        return torch.cat(picks)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i]
    return tokens
