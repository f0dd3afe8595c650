"""Hidden states read where the answer is predicted: the model cut to its first K decoder layers (early
exit), or one layer's output kept while a whole pass runs. Either is normed by the model's final norm,
as its last layer's output is before the vocabulary head."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from sentiq.errors import OptionError


def check_layer(layer: int, depth: int) -> None:
    if not isinstance(layer, int) or isinstance(layer, bool) or not 1 <= layer <= depth:
        raise OptionError(f"--layer must be between 1 and {depth} (this model's layers), not {layer}")


@contextlib.contextmanager
def first_layers(model: Any, layers: int | None) -> Iterator[None]:
    """The model cut to its first `layers` decoder layers for the duration (its final norm kept)."""
    decoder = model.model
    whole = decoder.layers
    if layers is not None:
        check_layer(layers, len(whole))
    if layers is None or layers == len(whole):
        yield
        return
    decoder.layers = whole[:layers]
    try:
        yield
    finally:
        decoder.layers = whole


class Kept:
    """One decoder layer's output in the pass that ran inside `layer_output`."""

    def __init__(self, norm: Any) -> None:
        self.norm = norm
        self.output: torch.Tensor | None = None  # (batch, seq, hidden)

    @torch.inference_mode()
    def at(self, rows: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """The normed states at (row, position) pairs: (pairs, hidden) in float32."""
        assert self.output is not None, "no pass ran"
        device = self.output.device
        picked = self.output[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
        return self.norm(picked).float().cpu().numpy()


@contextlib.contextmanager
def layer_output(model: Any, layer: int) -> Iterator[Kept]:
    """Keep the output of decoder layer `layer` (1-based) of every pass run inside; the model runs whole."""
    decoder = model.model
    check_layer(layer, len(decoder.layers))
    kept = Kept(decoder.norm)

    def keep(module: Any, args: Any, output: Any) -> None:
        kept.output = output[0] if isinstance(output, tuple) else output

    handle = decoder.layers[layer - 1].register_forward_hook(keep)
    try:
        yield kept
    finally:
        handle.remove()
