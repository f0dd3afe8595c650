"""Labelled texts from the embedded sample, local files or hub datasets, with explicit label maps
(seeded samples of them: io.samples). Labels leave this module as the names of the label set asked for
('positive' / 'negative' unless said otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from sentiq.choices import EMBEDDED
from sentiq.errors import DataError, UnknownLabels, first_line
from sentiq.io.formats import TABLES, format_of, suffixes
from sentiq.io.hub import require_hub
from sentiq.io.tables import read_delimited
from sentiq.predictions import is_binary
from sentiq.settings import DataSpec, MethodConfig
from sentiq.text import LABELS, text_digest

# Source encodings, stated per dataset: the same IMDB reviews come with opposite integer codes.
HUB_DATASETS: dict[str, tuple[str, str, dict[object, str]]] = {
    # id: (split, text column, label map)
    "stanfordnlp/imdb": ("test", "text", {1: "positive", 0: "negative"}),
    "imdb": ("test", "text", {1: "positive", 0: "negative"}),
    "ajaykarthick/imdb-movie-reviews": ("test", "review", {0: "positive", 1: "negative"}),
}
# Label spellings understood without --label-map (compared case-insensitively).
DEFAULT_LABEL_MAP: dict[str, str] = {
    "1": "positive",
    "0": "negative",
    "pos": "positive",
    "neg": "negative",
    "positive": "positive",
    "negative": "negative",
}


def embedded_frame() -> pd.DataFrame:
    """The whole embedded sample: 1,000 evaluation reviews, a 400-review demonstration pool and 1,000
    tuning reviews, the last two from aclImdb's train split and disjoint from each other."""
    with resources.as_file(resources.files("sentiq.io") / "data" / "imdb_sample.parquet") as path:
        return pd.read_parquet(path)


def load_labelled(spec: DataSpec, labels: Sequence[str] = LABELS) -> pd.DataFrame:
    """Columns id, text, label (one of `labels`), whatever the source."""
    if spec.source == EMBEDDED:
        if not is_binary(labels):
            raise DataError(
                f"the embedded sample is labelled positive/negative, and the prompt's labels are {', '.join(labels)}: "
                "give --dataset with texts labelled in that set"
            )
        return _embedded_split("eval")
    path = Path(spec.source).expanduser()
    if path.exists() or format_of(path, TABLES):
        return _from_frame(read_table(path), spec, str(path), labels)
    return _from_hub(spec, labels)


def load_pool() -> pd.DataFrame:
    """Demonstrations: train reviews, disjoint from every evaluation sample we ship."""
    return _embedded_split("pool")


def pool_for(method: MethodConfig, labels: Sequence[str] = LABELS) -> pd.DataFrame | None:
    """k-shot's demonstration pool: the labelled file of --demos (in the prompt's label set), else the
    embedded IMDB pool; other methods draw none."""
    if method.method != "k-shot":
        return None
    if method.demos is None:
        return load_pool()
    return load_labelled(DataSpec(method.demos), labels)


def load_tuning() -> pd.DataFrame:
    """Tuning texts: train reviews outside the pool, so a search scores the very demonstrations
    evaluation will show, and never scores a text it also shows as one."""
    return _embedded_split("tune")


def save_texts_used(path: Path, texts: pd.DataFrame) -> None:
    """Which labelled texts a search scored, by content (ids, labels and text digests; not the texts)."""
    from sentiq.io.files import write_frame

    used = texts[["id", "label"]].assign(text_digest=texts["text"].map(text_digest))
    write_frame(path, used)


def texts_used(paths: Sequence[str]) -> set[str]:
    """The text digests the files of save_texts_used hold."""
    try:
        return set().union(*(set(pd.read_csv(p, dtype=str)["text_digest"]) for p in paths))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read which texts a tuned choice was searched on ({first_line(exc)})") from exc


def _embedded_split(name: str) -> pd.DataFrame:
    df = embedded_frame()
    df = df[df["split"] == name]
    return _finish(df["id"], df["text"], df["label"].map({1: "positive", 0: "negative"}))


def read_table(path: Path) -> pd.DataFrame:
    """A local table by its extension, with errors that name the file and what is wrong with it."""
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder; give a {suffixes(TABLES)} file")
    kind = format_of(path, TABLES)
    if kind is None:
        raise DataError(f"{path}: unknown file type '{path.suffix}'; use {suffixes(TABLES)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        elif kind in ("csv", "tsv"):
            df = read_delimited(path, kind)
        else:
            df = pd.read_json(path, lines=kind == "jsonl", dtype=False)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 (byte {exc.start}); re-save it as UTF-8") from exc
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        first = first_line(exc)
        raise DataError(f"{path} is not a readable {kind} file: {first}") from exc
    if df.empty:
        raise DataError(f"{path} has no rows")
    return df


def parse_label_map(text: str | None, labels: Sequence[str] = LABELS) -> dict[str, str]:
    """'1=positive,0=negative' -> {'1': 'positive', '0': 'negative'}: raw value (spaces allowed) = label
    name, keys compared case-insensitively. Without a map: the binary labels' usual spellings, or the
    label names themselves for another set."""
    names = {label.lower(): label for label in labels}
    if not text:
        return dict(DEFAULT_LABEL_MAP) if is_binary(labels) else names
    mapping: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        label = names.get(value.strip().lower())
        if not sep or not key.strip() or label is None:
            raise UnknownLabels(
                f"bad --label-map entry '{part}': write VALUE=LABEL, comma-separated, LABEL one of {', '.join(labels)}"
            )
        if key.strip().lower() in mapping:
            raise UnknownLabels(f"--label-map gives the value '{key.strip()}' twice (values are compared in any case)")
        mapping[key.strip().lower()] = label
    return mapping


def map_labels(values: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Source label values to label names; values outside the map are an error that lists them."""
    keys = values.map(_label_key)
    mapped = keys.map(mapping)
    unknown = sorted(set(keys[mapped.isna()]))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        example = ",".join(f"{i}={name}" for i, name in enumerate(sorted(set(mapping.values()))))
        raise UnknownLabels(f"label values not in the label map: {shown}; pass --label-map, e.g. '{example}'")
    return mapped


def _label_key(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _from_frame(df: pd.DataFrame, spec: DataSpec, where: str, labels: Sequence[str] = LABELS) -> pd.DataFrame:
    text_col = spec.text_column or "text"
    missing = [c for c in (text_col, spec.label_column) if c not in df.columns]
    if missing:
        raise DataError(
            f"{where}: no column {', '.join(repr(m) for m in missing)}; columns are: {', '.join(map(str, df.columns))} "
            "(choose with --text-column / --label-column)"
        )
    ids = df["id"] if "id" in df.columns else pd.Series(range(len(df)), index=df.index)
    mapped = map_labels(df[spec.label_column], parse_label_map(spec.label_map, labels))
    return _finish(ids, df[text_col], mapped, where)


def _from_hub(spec: DataSpec, labels: Sequence[str] = LABELS) -> pd.DataFrame:
    known = HUB_DATASETS.get(spec.source)
    split = spec.split or (known[0] if known else "test")
    fix = "download it where there is network, save it as .parquet or .csv and pass that file to --dataset"
    require_hub(f"dataset {spec.source}", fix, DataError)
    import datasets

    try:
        ds = datasets.load_dataset(spec.source, split=split)
    except Exception as exc:  # datasets raises many types: not found, gated, bad split
        first = first_line(exc)
        raise DataError(f"cannot load dataset {spec.source} (split {split}): {first}") from exc
    df = ds.to_pandas()
    text_col = spec.text_column or (known[1] if known else "text")
    if spec.label_map is None and known is not None and is_binary(labels):
        label_map = ",".join(f"{k}={v}" for k, v in known[2].items())
    else:
        label_map = spec.label_map or _class_label_map(ds.features.get(spec.label_column), labels)
    return _from_frame(df, DataSpec(spec.source, text_col, spec.label_column, label_map), spec.source, labels)


def _class_label_map(feature: object, labels: Sequence[str] = LABELS) -> str | None:
    """A ClassLabel's own names ('neg', 'pos', ...; or the label names) decide what its integers mean."""
    names = getattr(feature, "names", None)
    if not names:
        return None
    known = parse_label_map(None, labels)
    pairs = [f"{i}={known[n.lower()]}" for i, n in enumerate(names) if n.lower() in known]
    return ",".join(pairs) if len(pairs) == len(names) else None


def _finish(ids: pd.Series, texts: pd.Series, labels: pd.Series, where: str = EMBEDDED) -> pd.DataFrame:
    df = pd.DataFrame({"id": ids.astype(str).to_numpy(), "text": texts.to_numpy(), "label": labels.to_numpy()})
    if not df["text"].map(lambda t: isinstance(t, str)).all():
        raise DataError(f"{where}: the text column holds values that are not text")
    dupes = df["id"][df["id"].duplicated()].unique()
    if len(dupes):
        raise DataError(f"{where}: duplicate ids {', '.join(map(str, dupes[:5]))}; ids must be unique")
    return df.reset_index(drop=True)
