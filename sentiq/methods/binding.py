"""A prompt bound to an engine: its shared prefix encoded once, its label words as tokens, and the
checks that make a prompt usable by the generation methods."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentiq.core.engine import Engine
from sentiq.errors import OptionError
from sentiq.methods.prompts import Prompt, PromptTemplate, build_template

# Texts that probe whether prefix and body tokenize apart exactly: words, punctuation, digits, a line
# break and non-ASCII characters next to the seam.
log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # prompts said to tokenize across the seam
SPLIT_PROBES = ("A great film.", "dull", "Terrible!\nAvoid.", "N/A", "9/10, très bon — ok", "")


def splits_exactly(engine: Engine, prefix: str, bodies: Sequence[str], ref: str) -> bool:
    """True when encoding prefix and body apart gives the tokens of the whole prompt, as with Qwen's
    tokenizer; a tokenizer that merges across the seam would make the cached prefix wrong. Warns once
    per process and prompt when it does not."""
    head = engine.encode(prefix)
    exact = all(head + engine.encode(b) == engine.encode(prefix + b) for b in bodies)
    if not exact and ref not in _WARNED:
        log.warning(
            f"this tokenizer merges tokens where prompt '{ref}' meets the text: its prompts are encoded whole (slower)"
        )
        _WARNED.add(ref)
    return exact


@dataclass
class Bound:
    """One prompt rendered for one engine: its shared prefix encoded once, its label words as tokens."""

    prompt: Prompt
    template: PromptTemplate
    cached: bool  # prefix and body tokenize apart exactly: the prefix's cache is reused
    prefix: list[int]
    label_ids: list[list[int]]

    @classmethod
    def bind(cls, engine: Engine, prompt: Prompt, demos: Sequence[tuple[str, str]]) -> Bound:
        template = build_template(engine.tokenizer, prompt, demos)
        cached = splits_exactly(engine, template.prefix, [template.body(p) for p in SPLIT_PROBES], prompt.ref)
        prefix = engine.encode(template.prefix) if cached else []
        return cls(prompt, template, cached, prefix, [engine.encode(w) for w in prompt.words])

    @property
    def first_ids(self) -> list[int]:
        """Each label word's first token: where a generated answer commits to a label."""
        return [ids[0] if ids else -1 for ids in self.label_ids]

    @property
    def answerable(self) -> bool:
        """Whether a generated answer can commit to a label with its first token: the label words must
        all differ there."""
        first = self.first_ids
        return len(set(first)) == len(first)

    def body(self, engine: Engine, text: str) -> np.ndarray:
        """The tokens the engine adds to the shared prefix for this text (int32: ~3 KB per review instead
        of ~27 KB as a list of ints): the prompt's body, or the whole prompt when it does not split."""
        return self.bodies(engine, [text])[0]

    def bodies(self, engine: Engine, texts: Sequence[str]) -> list[np.ndarray]:
        """`body` of every text, in one call of the tokenizer (a fast tokenizer encodes a batch in
        parallel, outside the GIL)."""
        render = self.template.body if self.cached else self.template.full
        return [np.asarray(ids, dtype=np.int32) for ids in engine.encode_many([render(t) for t in texts])]


def first_tokens(b: Bound) -> list[list[int]]:
    return [ids[:1] for ids in b.label_ids]


def answer_firsts(b: Bound, engine: Engine) -> tuple[list[int], list[int]]:
    """The first tokens an answer can name a label with, as answers are parsed (whatever the casing):
    each label word's own first token, then those of its other casings; a token that could start two
    labels is left out. With the index of the label each names."""
    own = b.first_ids
    spelled = [{engine.encode(f(w))[0] for f in (str.lower, str.capitalize, str.upper)} for w in b.prompt.words]
    seen = Counter(t for firsts in spelled for t in firsts)
    shared = {t for t, n in seen.items() if n > 1}
    others = [(t, j) for j, firsts in enumerate(spelled) for t in sorted(firsts - shared) if t not in own]
    return own + [t for t, _ in others], list(range(len(own))) + [j for _, j in others]


def deciding_tokens(b: Bound, engine: Engine) -> tuple[list[int], list[int]]:
    """The tokens by which a generated answer commits to a label: each label word's own first token (the
    prompt asks for that word), and every other spelling of it that is one whole token (its casings, also
    after a space as inside a sentence); a token that could name two labels is left out. With the index of
    the label each names. A fragment such as the first token of 'POSITIVE' commits to nothing."""
    own = b.first_ids
    spellings = [f(w) for w in b.prompt.words for f in (str.lower, str.capitalize, str.upper)]
    whole = {s: engine.encode(s) for s in {*spellings, *(" " + s for s in spellings)}}
    named = [
        {ids[0] for s, ids in whole.items() if len(ids) == 1 and s.strip().lower() == w.lower()} for w in b.prompt.words
    ]
    seen = Counter(t for tokens in named for t in tokens)
    others = [(t, j) for j, tokens in enumerate(named) for t in sorted(tokens) if seen[t] == 1 and t not in own]
    return own + [t for t, _ in others], list(range(len(own))) + [j for _, j in others]


def check_first_tokens(b: Bound, engine: Engine) -> None:
    """Generation methods need label words that differ in their first token: that token is where an
    answer commits to a label."""
    if not b.answerable:
        firsts = b.first_ids
        i, j = next((i, j) for i in range(len(firsts)) for j in range(i + 1, len(firsts)) if firsts[i] == firsts[j])
        token = engine.decode(b.label_ids[i][:1])
        a, c = b.prompt.words[i], b.prompt.words[j]
        raise OptionError(
            f"prompt '{b.prompt.ref}': label words '{a}' and '{c}' start with the same token ('{token}'), so a "
            "generated answer cannot commit to one with its first token; choose words that start differently"
        )
