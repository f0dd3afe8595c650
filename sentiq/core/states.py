"""Hidden states read where the answer is predicted: the model cut to its first K decoder layers, a span
of its layers run on states carried from an earlier span (early exits), or some layers' outputs kept
while a whole pass runs. Each is normed by the model's final norm, as its last layer's output is before
the vocabulary head."""

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


@contextlib.contextmanager
def between_layers(model: Any, start: int, stop: int) -> Iterator[Any]:
    """The model cut to decoder layers start+1 .. stop for the duration, its final norm left out so
    that what it gives carries on into the next span; yields that norm. Each layer keeps its own index
    into the key/value cache, so a cache holding the prefix at every layer serves any span."""
    decoder = model.model
    whole, norm = decoder.layers, decoder.norm
    kinds = set(getattr(model.config, "layer_types", None) or ["full_attention"])
    if len(kinds) > 1:  # the model's forward picks each layer's mask by its place in the span
        raise OptionError("early exits need a model whose layers all attend alike (no sliding-window layers)")
    check_layer(stop, len(whole))
    decoder.layers, decoder.norm = whole[start:stop], torch.nn.Identity()
    try:
        yield norm
    finally:
        decoder.layers, decoder.norm = whole, norm


class Kept:
    """Decoder layers' outputs in the pass that ran inside `layer_outputs`."""

    def __init__(self, norm: Any, layers: Sequence[int]) -> None:
        self.norm = norm
        self.outputs: dict[int, torch.Tensor] = {}  # layer: (batch, seq, hidden)
        self.layers = tuple(layers)

    @torch.inference_mode()
    def at(self, rows: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """The normed states at (row, position) pairs, each kept layer's side by side in the order the
        layers were given: (pairs, layers x hidden) in float32."""
        assert len(self.outputs) == len(self.layers), "no pass ran"
        some = self.outputs[self.layers[0]]
        where = torch.tensor(rows, device=some.device), torch.tensor(positions, device=some.device)
        return torch.cat([self.norm(self.outputs[k][where]) for k in self.layers], dim=1).float().cpu().numpy()


@contextlib.contextmanager
def layer_outputs(model: Any, layers: Sequence[int]) -> Iterator[Kept]:
    """Keep the outputs of decoder layers `layers` (1-based) of every pass run inside; the model runs whole."""
    decoder = model.model
    for layer in layers:
        check_layer(layer, len(decoder.layers))
    kept = Kept(decoder.norm, layers)

    def keeper(layer: int) -> Any:
        def keep(module: Any, args: Any, output: Any) -> None:
            kept.outputs[layer] = output[0] if isinstance(output, tuple) else output

        return keep

    handles = [decoder.layers[k - 1].register_forward_hook(keeper(k)) for k in dict.fromkeys(layers)]
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()
