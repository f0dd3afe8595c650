"""Prompt text, label words and chat messages. Every method builds its prompts here."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LABELS = ("positive", "negative")  # internal label names; index order of every score array
# The system prompt states the task and the answer format; the review alone is the user turn. Chosen
# by measurement on train reviews with the 0.5B stand-in (figures in the README, "Methods").
SYSTEM = "You are a sentiment classifier. Read the movie review and answer with exactly one word: Positive or Negative."
INSTRUCTION = "{review}"
# The word that stands for each label: what scoring measures and what demonstrations answer; each is
# a single Qwen token, capitalised as the system prompt asks.
LABEL_WORDS = {"positive": "Positive", "negative": "Negative"}
# Inputs with no content, for contextual calibration (Zhao et al. 2021).
CONTENT_FREE = ("N/A", "", "[MASK]")
_SENTINEL = "\ue000REVIEW\ue000"  # private-use marker; cleaned texts never contain it
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ue000-\uf8ff]")
_LABEL_WORD = re.compile(r"\b(positive|negative)\b", re.IGNORECASE)


def clean_text(text: str) -> str:
    """HTML line breaks to newlines, control characters dropped, NFC, outer whitespace stripped."""
    text = _BREAK.sub("\n", unicodedata.normalize("NFC", text))
    return _CONTROL.sub("", text).strip()


def word_count(text: str) -> int:
    """Words of an input text, the unit of throughput."""
    return len(text.split())


def parse_label(answer: str) -> str | None:
    """The label a generated answer names, or None when it names neither or both."""
    found = {m.lower() for m in _LABEL_WORD.findall(answer)}
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class PromptTemplate:
    """A rendered chat prompt split around the review: prefix + review + suffix.

    The prefix is the same for every text of a run (system prompt, demonstrations, the start of the
    instruction), so the engine encodes it once and reuses its key/value cache. Whitespace that ends
    the prefix is moved in front of the review, so that " great" tokenizes as a word would in running
    text (lm-evaluation-harness does the same when it splits context and continuation).
    """

    prefix: str
    suffix: str
    gap: str  # whitespace between prefix and review

    def body(self, review: str) -> str:
        """The per-text part of the prompt: everything after the shared prefix."""
        return f"{self.gap}{review}{self.suffix}"

    def full(self, review: str) -> str:
        return self.prefix + self.body(review)


def chat_messages(review: str, demos: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """Demonstrations as earlier user/assistant turns, then the review to classify."""
    messages: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}] if SYSTEM else []
    for text, label in demos:
        messages.append({"role": "user", "content": INSTRUCTION.format(review=text)})
        messages.append({"role": "assistant", "content": LABEL_WORDS[label]})
    messages.append({"role": "user", "content": INSTRUCTION.format(review=review)})
    return messages


def build_template(tokenizer: Any, demos: Sequence[tuple[str, str]] = ()) -> PromptTemplate:
    """Render the chat template once with a marker where the review goes, and split there."""
    rendered = tokenizer.apply_chat_template(
        chat_messages(_SENTINEL, demos), tokenize=False, add_generation_prompt=True
    )
    prefix, suffix = rendered.split(_SENTINEL)
    stripped = prefix.rstrip()
    return PromptTemplate(prefix=stripped, suffix=suffix, gap=prefix[len(stripped) :])
