"""Encoded prompt prefixes: the keys and values of a prefix computed once and shared by every text of a
call (and of later calls), the least recently used dropped first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

PREFIXES_KEPT = 16  # encoded prompt prefixes kept, least recently used dropped first (a search tries many)
KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape (1, kv_heads, seq, head_dim)


@dataclass
class PrefixCache:
    model: Any  # a transformers causal LM
    device: torch.device
    kept: OrderedDict[tuple[int, ...], KV] = field(default_factory=OrderedDict)  # the latest used last

    @torch.inference_mode()
    def kv(self, prefix: Sequence[int]) -> KV:
        """The prefix's keys and values per layer, encoded on first use."""
        key = tuple(prefix)
        if not key:
            return []
        if key in self.kept:
            self.kept.move_to_end(key)
            return self.kept[key]
        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
        cache = self.model.model(input_ids=ids, use_cache=True).cache
        self.kept[key] = [(layer.keys, layer.values) for layer in cache.layers]
        while len(self.kept) > PREFIXES_KEPT:
            self.kept.popitem(last=False)
        return self.kept[key]

    def for_batch(self, prefix: Sequence[int], batch: int) -> Any:
        """A fresh cache holding the prefix for `batch` rows (expanded views; no copy until appended to)."""
        from transformers import DynamicCache

        kv = self.kv(prefix)
        if not kv:
            return DynamicCache(config=self.model.config)
        data = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)
