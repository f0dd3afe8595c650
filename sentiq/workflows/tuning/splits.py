"""The labelled texts a search scores: the embedded tuning reviews, or a sample of one's own dataset in
its label set. A search keeps which texts it scored (by content, split.csv) so that evaluating with its
choice leaves them out: a choice is never measured on the texts it was chosen on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from sentiq.choices import EMBEDDED
from sentiq.errors import DataError, OptionError, UnknownLabels
from sentiq.settings import DataSpec
from sentiq.text import LABELS, clean_text

EMBEDDED_SPLIT = "train tuning reviews (disjoint from evaluation and the demonstration pool)"


@dataclass
class Split:
    texts: pd.DataFrame  # id, text, label
    labels: tuple[str, ...]
    record: str | dict[str, Any]  # where the texts came from, as best.json says it


def tuning_split(data: DataSpec, prompts: list[Any], n: int, seed: int, rule: str, check: bool = True) -> Split:
    """n texts drawn by `rule` with `seed`, labelled in the prompts' label set; without prompts, in the
    first built-in label set the dataset's labels read in. `check`: refuse texts of one label, as a search
    must (a caller that checks them its own way says False)."""
    from sentiq.io.datasets import load_labelled, load_tuning
    from sentiq.io.samples import draw_sample

    labels = one_label_set(prompts) if prompts else None
    if data.source == EMBEDDED:
        if labels not in (None, LABELS):
            raise OptionError(
                f"the embedded tuning reviews are labelled positive/negative, and prompt '{prompts[0].ref}' answers "
                f"in {', '.join(labels)}: give --dataset with texts labelled in its set"
            )
        return Split(draw_sample(load_tuning(), n, seed, LABELS, rule), LABELS, EMBEDDED_SPLIT)
    if labels is None:
        labels, labelled = _in_builtin_set(data)
    else:
        labelled = load_labelled(data, labels)
    texts = draw_sample(labelled[labelled["text"].map(lambda t: bool(clean_text(t)))], n, seed, labels, rule)
    held = sorted(set(texts["label"]))
    if check and len(held) < 2:
        raise DataError(
            f"the tuning texts are all labelled {held[0]}: a search needs texts of at least two labels to tell "
            "a prompt that reads them from one that answers the same label every time"
        )
    from sentiq.workflows.run_files import sample_digest

    record = {"dataset": asdict(data), "sample": rule, "seed": seed, "sample_digest": sample_digest(texts)}
    return Split(texts, labels, record)


def one_label_set(prompts: list[Any]) -> tuple[str, ...]:
    """The label set every candidate answers in: a search measures them on the same labelled texts."""
    other = next((p for p in prompts if p.labels != prompts[0].labels), None)
    if other is not None:
        raise OptionError(
            f"prompts '{prompts[0].ref}' and '{other.ref}' answer in different label sets "
            f"({', '.join(prompts[0].labels)} / {', '.join(other.labels)}): search each set apart"
        )
    return prompts[0].labels


def builtin_prompts(labels: tuple[str, ...]) -> list[Any]:
    """Every built-in prompt and label-word variant that answers in `labels`: a search's default candidates."""
    from sentiq.methods.prompts import builtin_refs, load_prompt

    return [p for p in map(load_prompt, builtin_refs()) if p.labels == labels]


def default_prompt(labels: tuple[str, ...]) -> str:
    """The prompt a label set is searched with when none is given: the default one, or the set's first built-in."""
    from sentiq.methods.prompts import builtin_names, load_prompt

    return next(name for name in builtin_names() if load_prompt(name).labels == labels)


def _in_builtin_set(data: DataSpec) -> tuple[tuple[str, ...], pd.DataFrame]:
    from sentiq.io.datasets import load_labelled
    from sentiq.methods.prompts import builtin_names, load_prompt

    sets = list(dict.fromkeys(load_prompt(name).labels for name in builtin_names()))
    for labels in sets:
        try:
            return labels, load_labelled(data, labels)
        except UnknownLabels:
            continue
    said = "; ".join(", ".join(labels) for labels in sets)
    raise DataError(
        f"{data.source}: its labels read in none of the built-in label sets ({said}): map them with --label-map, "
        "or give prompts of your own labels"
    )
