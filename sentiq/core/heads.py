"""The vocabulary head, applied only where a score is read, its product in float32."""

from __future__ import annotations

import torch

HEAD_BLOCK_ROWS = 16_384  # vocabulary rows widened to float32 at a time


def vocab_logprobs(head: torch.nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary log-probabilities for the given hidden states only, the head's product computed in
    float32: in bfloat16 each logit keeps about three significant digits, so close label scores would
    round to one value. A half-precision weight is widened a block of rows at a time, so no float32 copy
    of the whole matrix is held."""
    x = hidden.float()
    if head.weight.dtype == torch.float32:
        logits = torch.nn.functional.linear(x, head.weight)
    else:
        blocks = head.weight.split(HEAD_BLOCK_ROWS)
        logits = torch.cat([torch.nn.functional.linear(x, w.float()) for w in blocks], dim=-1)
    if head.bias is not None:
        logits = logits + head.bias.float()
    return logits.log_softmax(dim=-1)  # (rows, vocab), float32
