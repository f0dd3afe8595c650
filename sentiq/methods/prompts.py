"""Prompts as data: TOML files (built-in ones in sentiq/prompts/, or the user's own) -> checked prompts
-> chat messages and the label words a method scores or parses."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sentiq.choices import DEFAULT_PROMPT
from sentiq.errors import OptionError
from sentiq.predictions import INVALID, RESERVED_LABELS, UNCERTAIN
from sentiq.text import LABELS, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Inputs with no content, for contextual calibration (Zhao et al. 2021).
CONTENT_FREE = ("N/A", "", "[MASK]")
FILE_KEYS = {"name", "description", "system", "user", "labels", "ordered", "variants"}
MAX_LABELS = 10  # label words a prompt may ask a small model to choose among
_NAME = re.compile(r"\w+")
_SENTINEL = "\ue000TEXT\ue000"  # private-use marker; cleaned texts never contain it
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _word_pattern(word: str) -> re.Pattern[str]:
    """A label word as a whole word, any case: 'happy' does not match inside 'unhappy'."""
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    """One prompt: optional system text, the user turn with {text}, and its label set: each label's name
    and the word that stands for it ({positive}, {neutral}... in the texts are replaced by the words)."""

    name: str
    user: str
    words: tuple[str, ...]  # in `labels` order
    system: str | None = None  # None: the chat template's own system prompt
    description: str = ""
    variant: str | None = None  # which label-word set of the file, None for its [labels]
    origin: str = "built-in"  # or the file it was read from
    labels: tuple[str, ...] = LABELS  # the label names, in the order of every score array
    ordered: bool = False  # the labels run from low to high (ratings)

    @property
    def ref(self) -> str:
        return self.name if self.variant is None else f"{self.name}:{self.variant}"

    @property
    def spec(self) -> str:
        """What --prompt takes to load this prompt again (a file by its absolute path)."""
        where = self.name if self.origin == "built-in" else self.origin
        return where if self.variant is None else f"{where}:{self.variant}"

    @property
    def label_words(self) -> dict[str, str]:
        return dict(zip(self.labels, self.words))

    def fill(self, template: str, text: str = "") -> str:
        """One pass over the placeholders, so a text that contains '{positive}' stays as it is."""
        values = {**self.label_words, "text": text}
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)

    def messages(self, text: str, demos: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
        """Demonstrations as earlier user/assistant turns, then the text to classify."""
        messages = [] if self.system is None else [{"role": "system", "content": self.fill(self.system)}]
        for demo, label in demos:
            messages.append({"role": "user", "content": self.fill(self.user, demo)})
            messages.append({"role": "assistant", "content": self.label_words[label]})
        messages.append({"role": "user", "content": self.fill(self.user, text)})
        return messages

    def parse(self, answer: str) -> str | None:
        """The label a generated answer names, or None when it names none or several."""
        found = {label for label, word in self.label_words.items() if _word_pattern(word).search(answer)}
        return found.pop() if len(found) == 1 else None

    def record(self) -> dict[str, Any]:
        """What a run's config.json keeps: the full text and a hash of what decides predictions."""
        body = {"system": self.system, "user": self.user, "labels": self.label_words}
        if self.ordered:  # recorded only when set: the hashes of earlier runs stay as they were
            body["ordered"] = True
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:12]
        return {"ref": self.ref, "origin": self.origin, **body, "hash": digest}


# -- loading and checking ----------------------------------------------------------------------------
def builtin_names() -> list[str]:
    """The prompts sentiq ships, the default first."""
    folder = resources.files("sentiq.methods").joinpath("prompts")
    names = sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))
    return sorted(names, key=lambda n: n != DEFAULT_PROMPT)


def builtin_refs() -> list[str]:
    """Every built-in prompt with each of its label-word sets: the candidates tune-prompt scores."""
    refs = []
    for name in builtin_names():
        data = _read(resources.files("sentiq.methods").joinpath("prompts", f"{name}.toml"), name)
        refs += [name, *(f"{name}:{v}" for v in data.get("variants", {}))]
    return refs


def load_prompts(spec: str) -> list[Prompt]:
    """`--prompt` as prompts: 'NAME', 'NAME:VARIANT', 'FILE.toml' or 'FILE.toml:VARIANT', several
    comma-separated (an ensemble)."""
    refs = list(dict.fromkeys(r.strip() for r in spec.split(",") if r.strip()))
    if not refs:
        raise OptionError("--prompt needs a prompt name or a .toml file")
    return [load_prompt(r) for r in refs]


def load_prompt(ref: str) -> Prompt:
    base, _, variant = ref.partition(":") if not _is_path(ref) else _split_path(ref)
    if _is_path(base):
        path = Path(base)
        if not path.is_file():
            raise OptionError(f"prompt file {path} does not exist")
        return _from_data(_read(path, str(path)), str(path.resolve()), variant or None)
    names = builtin_names()
    if base not in names:
        hint = did_you_mean(base, names)
        raise OptionError(f"unknown prompt '{base}': choose from {', '.join(names)}, or give a .toml file.{hint}")
    return _from_data(
        _read(resources.files("sentiq.methods").joinpath("prompts", f"{base}.toml"), base), "built-in", variant or None
    )


def _is_path(ref: str) -> bool:
    return ".toml" in ref or "/" in ref or "\\" in ref


def _split_path(ref: str) -> tuple[str, str, str]:
    """'dir/p.toml:lower' -> ('dir/p.toml', ':', 'lower')."""
    head, sep, tail = ref.rpartition(":")
    return (head, sep, tail) if head.endswith(".toml") else (ref, "", "")


def _read(path: Any, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"prompt {where}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"prompt {where}: not valid TOML ({exc})") from None


def _from_data(data: dict[str, Any], origin: str, variant: str | None) -> Prompt:
    """A prompt from a parsed file, refused in one line that names the rule it breaks."""
    where = origin if origin != "built-in" else f"'{data.get('name', '?')}'"

    def refuse(rule: str) -> OptionError:
        return OptionError(f"prompt {where}: {rule}")

    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise refuse(f"unknown key '{unknown[0]}' (a prompt file has {', '.join(sorted(FILE_KEYS))})")
    for key in ("name", "description", "system", "user"):
        if key in data and not isinstance(data[key], str):
            raise refuse(f"'{key}' must be a string")
    user, system = data.get("user"), data.get("system")
    if not user:
        raise refuse("it needs a 'user' text with {text} where the text goes")
    labels, words = _label_words(data.get("labels"), refuse)
    for template in (user, system or ""):
        bad = [p for p in _PLACEHOLDER.findall(template) if p not in ("text", *labels)]
        if bad:
            known = ", ".join(f"{{{n}}}" for n in ("text", *labels))
            raise refuse(f"unknown placeholder {{{bad[0]}}} (use {known})")
    if user.count("{text}") != 1:
        raise refuse("the 'user' text must hold {text} exactly once")
    if system is not None and "{text}" in system:
        raise refuse("{text} belongs in the 'user' text, not in 'system'")
    variants = data.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise refuse(f"[variants.NAME] tables must each give a word for {', '.join(labels)}")
    if not isinstance(data.get("ordered", False), bool):
        raise refuse("'ordered' must be true or false")
    if variant is not None and variant not in variants:
        have = ", ".join(variants) or "none"
        raise refuse(f"no label-word variant '{variant}' (it has: {have})")
    for other in variants.values():  # a broken variant is refused even when not asked for
        if tuple(other) != labels:
            raise refuse(f"a variant must give words for the same labels, in the same order: {', '.join(labels)}")
        _label_words(other, refuse)
    if variant is not None:
        words = _label_words(variants[variant], refuse)[1]
    name = data.get("name") or Path(origin).stem
    ordered = bool(data.get("ordered", False))
    return Prompt(name, user, words, system, data.get("description", ""), variant, origin, labels, ordered)


def _label_words(table: Any, refuse: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The label names and words of a [labels] table, checked: 2 to MAX_LABELS labels named like
    placeholders, each word non-empty and recognisable on its own in an answer (no two equal in any
    case, none a whole word inside another)."""
    if not isinstance(table, dict) or not 2 <= len(table) <= MAX_LABELS:
        raise refuse(f'[labels] must give 2 to {MAX_LABELS} labels, each a name = "word" line')
    bad = [name for name in table if not _NAME.fullmatch(name)]
    if bad:
        raise refuse(f"label name '{bad[0]}' must be letters, digits and _ (it is also a {{placeholder}})")
    reserved = next((name for name in table if name.lower() in RESERVED_LABELS), None)
    if reserved is not None:
        why = {INVALID: "for an answer that names no label", UNCERTAIN: "for a text it abstains on"}.get(
            reserved.lower(), "as an output column"
        )
        raise refuse(f"label name '{reserved}' is reserved: sentiq writes '{reserved.lower()}' {why}")
    folded = [name.lower() for name in table]
    twice = next((name for i, name in enumerate(table) if folded[i] in folded[:i]), None)
    if twice is not None:
        raise refuse(f"label names '{twice}' and '{list(table)[folded.index(twice.lower())]}' differ only in case")
    names, words = tuple(table), tuple(table.values())
    if not all(isinstance(w, str) and w.strip() == w and w for w in words):
        raise refuse("label words must be non-empty strings without outer spaces")
    for i, a in enumerate(words):
        for b in words[i + 1 :]:
            if _word_pattern(a).search(b) or _word_pattern(b).search(a):
                raise refuse(f"label words '{a}' and '{b}' cannot be told apart in an answer (one holds the other)")
    return names, words


# -- rendering -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptTemplate:
    """A rendered chat prompt split around the text: prefix + text + suffix.

    The prefix is the same for every text of a run (system prompt, demonstrations, the start of the
    instruction), so the engine encodes it once and reuses its key/value cache. Whitespace that ends
    the prefix is moved in front of the text, so that " great" tokenizes as a word would in running
    text (lm-evaluation-harness does the same when it splits context and continuation).
    """

    prefix: str
    suffix: str
    gap: str  # whitespace between prefix and text

    def body(self, text: str) -> str:
        """The per-text part of the prompt: everything after the shared prefix."""
        return f"{self.gap}{text}{self.suffix}"

    def full(self, text: str) -> str:
        return self.prefix + self.body(text)


def build_template(tokenizer: Any, prompt: Prompt, demos: Sequence[tuple[str, str]] = ()) -> PromptTemplate:
    """Render the chat template once with a marker where the text goes, and split there."""
    rendered = tokenizer.apply_chat_template(
        prompt.messages(_SENTINEL, demos), tokenize=False, add_generation_prompt=True
    )
    prefix, suffix = rendered.split(_SENTINEL)
    stripped = prefix.rstrip()
    return PromptTemplate(prefix=stripped, suffix=suffix, gap=prefix[len(stripped) :])
