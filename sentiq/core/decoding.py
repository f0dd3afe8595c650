"""Decoding: the settings (always explicit), the next-token choice and the decode loop. The model's own
generation_config is never consulted: Qwen's turns sampling on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# (tokens just chosen (rows,), step) -> log-probabilities of the next token (rows, vocab)
Step = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class Sampling:
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 8
    num_samples: int = 1  # answers per text (self-consistency)
    # calibration: (first token of each label word, log of its prior), divided out of the first step
    first_prior: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Answer:
    """A generated answer, and the log-probabilities the watched tokens had at the step where the first of
    them was chosen (None when none was): the step where a label-naming answer commits to its label."""

    text: str
    decided: np.ndarray | None = None


class Chooser:
    """Next-token choice: argmax when greedy; otherwise transformers' temperature/top-k/top-p warpers
    and a draw from a per-row generator, so a text's samples do not depend on its batch."""

    def __init__(self, sampling: Sampling, seeds: list[int], device: torch.device) -> None:
        self.generators: list[torch.Generator] = []
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


def row_seeds(seeds: list[int], num_samples: int) -> list[int]:
    """One seed per (text, sample) row, derived from the text's seed alone."""
    return [s * 1_000_003 + j for s in seeds for j in range(num_samples)]


def decode(
    first: torch.Tensor,
    step: Step,
    sampling: Sampling,
    seeds: list[int],
    eos_ids: list[int],
    pad_id: int,
    watch: Sequence[int] = (),
) -> tuple[list[list[int]], list[np.ndarray | None]]:
    """Token ids per row, chosen from `first` (the prompt's next-token log-probabilities, one row per
    sample) and then from `step`, until every row has ended or `max_new_tokens` were made (the end token
    itself is not returned); and per row, the log-probabilities of the `watch` tokens at the first step
    whose chosen token is one of them, as the choice saw them (None where no step chose one)."""
    choose = Chooser(sampling, row_seeds(seeds, sampling.num_samples), first.device)
    eos = torch.tensor(eos_ids, device=first.device)
    watched = torch.tensor(list(watch), dtype=torch.long, device=first.device)
    finished = torch.zeros(len(first), dtype=torch.bool, device=first.device)
    decided = torch.full((len(first), len(watched)), float("nan"), device=first.device)
    found = torch.zeros(len(first), dtype=torch.bool, device=first.device)
    produced: list[torch.Tensor] = []
    logp = divide_prior(first, sampling.first_prior)
    for i in range(sampling.max_new_tokens):
        token = choose(logp).masked_fill(finished, pad_id)
        produced.append(token)
        if len(watched):
            hit = torch.isin(token, watched) & ~found & ~finished
            decided[hit] = logp[hit][:, watched].float()
            found |= hit
        finished |= torch.isin(token, eos)
        if bool(finished.all()) or i == sampling.max_new_tokens - 1:
            break
        logp = step(token, i)
    rows = [until_eos(row, eos_ids) for row in torch.stack(produced, dim=1).tolist()]  # (rows, steps)
    kept = decided.cpu().numpy()
    return rows, [kept[r] if bool(found[r]) else None for r in range(len(rows))]


def divide_prior(logp: torch.Tensor, prior: tuple[tuple[int, float], ...]) -> torch.Tensor:
    """The first step's log-probabilities with a label prior divided out among the label tokens only:
    their odds change as calibration says, their total probability and every other token's stay."""
    if not prior:
        return logp
    ids = [i for i, _ in prior]
    log_prior = torch.tensor([p for _, p in prior], device=logp.device, dtype=logp.dtype)
    return _with_label_odds(logp, ids, logp[:, ids] - log_prior)


def mix_first(logp: torch.Tensor, ids: list[int], ending: torch.Tensor) -> torch.Tensor:
    """The first step's log-probabilities with the label tokens' log-odds averaged with those the text's
    ending gave them (`ending`: rows x labels; a row of NaN leaves its row as it is), as scoring averages
    the two views; the label tokens' total probability and every other token's stay."""
    labels = logp[:, ids]
    ending = ending.to(device=logp.device, dtype=logp.dtype)
    mixed = torch.where(torch.isnan(ending), labels, (labels + ending) / 2)
    return _with_label_odds(logp, ids, mixed)


def _with_label_odds(logp: torch.Tensor, ids: list[int], moved: torch.Tensor) -> torch.Tensor:
    """`logp` with the label tokens' log-probabilities set to `moved`, rescaled to their former total."""
    labels = logp[:, ids]
    moved = moved + (torch.logsumexp(labels, dim=-1, keepdim=True) - torch.logsumexp(moved, dim=-1, keepdim=True))
    out = logp.clone()
    out[:, ids] = moved
    return out


def until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i]
    return tokens
