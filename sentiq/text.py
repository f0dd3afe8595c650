"""The label names and the text helpers every layer shares: how a text is cleaned and how its words are
counted (the unit of throughput)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

LABELS = ("positive", "negative")  # internal label names; index order of every score array
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ue000-\uf8ff]")


def clean_text(text: str) -> str:
    """HTML line breaks to newlines, control characters dropped, NFC, outer whitespace stripped."""
    text = _BREAK.sub("\n", unicodedata.normalize("NFC", text))
    return _CONTROL.sub("", text).strip()


def lone_surrogate(text: str) -> int | None:
    """Where `text` holds half of a UTF-16 surrogate pair on its own (JSON's "\\ud800" decodes to one):
    not a character, so no tokenizer can encode it; None when it holds none."""
    found = _SURROGATE.search(text)
    return found.start() if found else None


def plural(n: float, noun: str) -> str:
    """'1 run', '2 runs', '0.5 CPUs': a quantity and its noun (regular plurals only)."""
    shown = f"{int(n):,}" if float(n).is_integer() else f"{n:g}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"


def word_count(text: str) -> int:
    """Words of an input text, the unit of throughput."""
    return len(text.split())


def text_digest(text: str) -> str:
    """A text by its content: the same text in another file, under another id or with other outer
    whitespace or line-break markup, has the same digest."""
    return hashlib.sha256(clean_text(text).encode("utf-8")).hexdigest()[:16]


def prior_text(prior: dict[str, float] | list[dict[str, float]]) -> str:
    """A calibration prior in words: P(positive) for the binary labels, every label's share otherwise;
    one per prompt where each prompt has its own."""
    rows = prior if isinstance(prior, list) else [prior]
    if all(set(row) == set(LABELS) for row in rows):
        return "P(positive) " + " / ".join(f"{row['positive']:.3f}" for row in rows)
    return " / ".join(", ".join(f"{k} {v:.3f}" for k, v in row.items()) for row in rows)


def did_you_mean(value: str, choices: Sequence[str], cutoff: float = 0.6) -> str:
    """ " Did you mean 'x'?" for the choice nearest `value`, or "" when none is near: every refusal of an
    unknown name says it the same way."""
    import difflib

    near = difflib.get_close_matches(value, list(choices), n=1, cutoff=cutoff)
    return f" Did you mean '{near[0]}'?" if near else ""
