"""Texts made ready for a prompt: cleaned, and cut in the middle when longer than the token limit; and
their endings, the second view of a text that `--tail` scores beside it."""

from __future__ import annotations

from collections.abc import Sequence

from sentiq.core.engine import Engine
from sentiq.text import clean_text


def prepare(engine: Engine, texts: Sequence[str], max_tokens: int) -> list[tuple[str, bool]]:
    """Each text cleaned and, past max_tokens, its middle cut (whether it was): the opening and the
    verdict usually sit at the two ends of a review. Only texts of more bytes than that are tokenized
    here, in one call: a token covers at least a byte (one more token at most for a tokenizer that marks
    the start)."""
    cleaned = [clean_text(t) for t in texts]
    prepared = [(t, False) for t in cleaned]
    long = [i for i, t in enumerate(cleaned) if len(t.encode("utf-8")) + 1 > max_tokens]
    for i, ids in zip(long, engine.encode_many([cleaned[i] for i in long])):
        if len(ids) > max_tokens:
            head = max_tokens // 2
            prepared[i] = (f"{engine.decode(ids[:head])} [...] {engine.decode(ids[-(max_tokens - head) :])}", True)
    return prepared


def endings(texts: Sequence[str], n: int) -> tuple[list[int], list[str]]:
    """The texts longer than n words (by index) and their last n words: reviews tend to close on their
    verdict, after a plot summary that carries none. A shorter text is its own ending."""
    words = [t.split() for t in texts]
    which = [i for i, w in enumerate(words) if len(w) > n]
    return which, [" ".join(words[i][-n:]) for i in which]
