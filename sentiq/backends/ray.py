"""The same classifier on a Ray cluster, through Ray Data: texts are read as blocks, labelled by a pool
of actors that each load the model once and bind the same method plan with `make_runner` as the local
backend does, and written or gathered. Nothing imports ray unless `--backend ray` is asked for (`pip install 'sentiq[ray]'`).

Seeds are per text, and predictions do not depend on batching, so a text gets the same label on
Ray as on the local engine. Ray Data retries the blocks of an actor that dies, and restarts it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.backends.local import Labelled, labelled_batches
from sentiq.backends.ray_cluster import connect
from sentiq.errors import DataError, ModelError, OptionError, SentiqError, debugging, first_line
from sentiq.io.formats import RAY_READS, RAY_WRITES, format_of, suffixes
from sentiq.io.tables import SEPARATORS, count_delimited
from sentiq.methods.plan import MethodPlan
from sentiq.results import CalibrationRecord
from sentiq.settings import ClassifySettings, ModelSettings, RaySettings
from sentiq.text import word_count

if not debugging():  # Ray Data's INFO lines are progress told twice
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
logger = logging.getLogger("sentiq")
ARROW_TYPES: dict[str, tuple[str, Callable[[Any], Any]]] = {  # a labelled row's fields as Arrow columns
    "label": ("string", str),
    "answer": ("string", lambda a: a or ""),
    "latency_ms": ("float64", float),
    **dict.fromkeys(("tokens", "truncated", "exit"), ("int64", int)),
    "exit_model": ("string", lambda m: m),  # null where the first model labelled the text, as locally
}
PROBABILITY = ("float64", lambda x: x)  # every p_ field: a block with no probability at all still writes doubles


class LabelBatch:
    """A Ray Data actor: the model loaded once, every batch labelled by the plan's runner, as locally.
    Empty texts are dropped (they have no sentiment); each row carries its share of the batch's time."""

    def __init__(self, model: ModelSettings, plan: MethodPlan, threads: int) -> None:
        import torch

        from sentiq.core.engine import load_engine
        from sentiq.methods.runner import make_runner

        torch.set_num_threads(threads)
        try:
            engine = load_engine(model)
        except SentiqError:
            raise
        except Exception as exc:  # safetensors, torch and others: the driver reads this line
            raise ModelError(f"cannot load model {model.model}: {first_line(exc)}") from exc
        self.runner = make_runner(engine, plan)
        self.where = engine.lm.describe()

    def __call__(self, batch: pd.DataFrame) -> Any:
        import pyarrow as pa

        from sentiq.text import clean_text

        batch = batch[batch["text"].astype(str).map(lambda t: bool(clean_text(t)))].reset_index(drop=True)
        batch = batch.assign(id=batch["id"].astype(str), text=batch["text"].astype(str))
        rows: list[dict[str, Any]] = [{}] * len(batch)  # the block's rows in its own order (batches run longest first)
        for done in labelled_batches(self.runner, range(len(batch)), list(batch["text"])):
            for row in done.rows:
                rows[row["id"]] = row
        table = pa.Table.from_pandas(batch, preserve_index=False)
        for name in (*self.runner.label_set.surface_fields("labelled"), "latency_ms"):
            kind, normal = PROBABILITY if name.startswith("p_") else ARROW_TYPES[name]
            table = table.append_column(name, pa.array([normal(r[name]) for r in rows], type=pa.type_for_alias(kind)))
        for name in ("device", "dtype"):
            table = table.append_column(name, pa.array([self.where[name]] * len(rows), type=pa.string()))
        return table


def label(
    ds: Any, model: ModelSettings, plan: MethodPlan, settings: RaySettings, runtime_env: dict | None = None
) -> Any:
    """The dataset's rows (id, text, ...) with the prediction columns added, by a pool of actors."""
    import ray.data

    method = plan.config
    if method.calibrated and method.calibrate in ("batch", "domain"):
        raise OptionError(
            f"--calibrate {method.calibrate} estimates its prior from the texts one process sees, and each Ray worker "
            "sees others: use the local engine, or --calibrate contextual"
        )
    ctx = ray.data.DataContext.get_current()
    ctx.wait_for_min_actors_s = 600  # without it the first actor up takes every block of a small input
    ctx.enable_progress_bars = os.isatty(2)  # Ray Data's own bars; sentiq draws none beside them
    threads = max(1, int(settings.cpus_per_worker))
    # Blocks small enough that every worker gets several, and no larger than a local chunk (memory).
    rows = min(max(1, ds.count() // (settings.workers * 4)), ClassifySettings.chunk_size)
    return ds.repartition(target_num_rows_per_block=rows).map_batches(
        LabelBatch,
        fn_constructor_kwargs={"model": model, "plan": plan, "threads": threads},
        compute=ray.data.ActorPoolStrategy(size=settings.workers),
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker,
        batch_size=None,  # a whole block per call: the engine sorts and batches within it
        batch_format="pandas",
        runtime_env=runtime_env,
    )


def read(path: str, text_column: str | None, keep: tuple[str, ...], names: dict[str, str] | None = None) -> Any:
    """Any path Ray Data reads (a file, a folder, s3://...), as rows of id, text and the kept columns,
    under their `names` in the output (the text stays `text` until written). Row numbers are not stable
    across workers, so the input needs an `id` column to join back on."""
    import ray.data

    kind = format_of(path) if Path(path).suffix else _format_inside(path)
    if kind is None:
        raise DataError(_unreadable(path))
    if kind not in RAY_READS:
        raise DataError("--backend ray needs an 'id' column to join labels back: use .csv, .jsonl or .parquet input")
    if kind in SEPARATORS:
        _check_delimited(Path(path), kind)
    reader = {
        "parquet": lambda: ray.data.read_parquet(path),
        "csv": lambda: ray.data.read_csv(path),
        "tsv": lambda: ray.data.read_csv(path, parse_options=_tab()),
        "json": lambda: ray.data.read_json(path, lines=False),
        "jsonl": lambda: ray.data.read_json(path, lines=True),
    }[kind]
    try:
        ds = reader()
        columns = ds.columns()
    except Exception as exc:
        raise DataError(f"cannot read {path} with Ray Data: {first_line(exc)}") from exc
    column = text_column or "text"
    needed = ["id", column, *[k for k in keep if k not in ("id", "text", column)]]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"{path}: no column '{missing[0]}' (--backend ray needs an id column and the text); "
            f"columns are: {', '.join(columns)}"
        )
    selected = ds.select_columns(list(dict.fromkeys(needed)))
    renames = {column: "text"} if column != "text" else {}
    renames |= {k: n for k, n in (names or {}).items() if k != "text" and n != k}
    return selected.rename_columns(renames) if renames else selected


def write(ds: Any, output: Path, columns: list[str], overwrite: bool = False) -> int:
    """Ray Data writes a folder of files at `output` (one file per block, as Spark does); the rows written.
    `overwrite` replaces what the folder (or a file of that name) held."""
    from ray.data import SaveMode

    kind = format_of(output, RAY_WRITES)
    if kind is None:
        raise DataError(f"--output {output}: --backend ray writes {suffixes(RAY_WRITES)} (a folder of files)")
    if overwrite and output.is_file():
        output.unlink()
    mode = SaveMode.OVERWRITE if overwrite else SaveMode.APPEND  # APPEND: into a new or empty folder
    getattr(ds.select_columns(columns), f"write_{'json' if kind == 'jsonl' else kind}")(str(output), mode=mode)
    return _rows_in(output)


def _rows_in(folder: Path) -> int:
    """Rows in a folder Ray Data wrote."""
    import pyarrow.parquet as pq

    total = 0
    for f in (p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_"))):
        if f.suffix == ".parquet":
            total += pq.ParquetFile(f).metadata.num_rows
        elif f.suffix == ".csv":  # quoted fields may span lines
            total += sum(len(c) for c in pd.read_csv(f, usecols=[0], dtype=str, chunksize=100_000))
        else:  # JSON lines: newlines inside values are escaped
            total += f.read_bytes().count(b"\n")
    return total


def run(work: Any) -> Any:
    """Run a Ray job; a worker that cannot load the model, or a cluster that goes away, ends in one
    line (Ray Data's own logging of the failure is held back unless SENTIQ_DEBUG is set)."""
    if not debugging():
        logging.disable(logging.ERROR)  # Ray Data logs each failure with its traceback
    try:
        return work()
    except SentiqError:
        raise
    except Exception as exc:
        raise SentiqError(f"a Ray worker failed: {_worker_error(exc)}") from exc
    finally:
        logging.disable(logging.NOTSET)


def _worker_error(exc: BaseException) -> str:
    """The error a worker raised, from the traceback text Ray wraps it in (an actor that dies while
    loading the model reaches the driver only as text)."""
    import re

    found = re.findall(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$", str(exc), flags=re.MULTILINE)
    useful = [(kind, text) for kind, text in found if kind not in ("RayTaskError", "SystemException", "ActorDiedError")]
    if useful:
        kind, text = useful[-1]
        return text if kind in ("ModelError", "DataError", "ResourceError", "SentiqError") else f"{kind}: {text}"
    return first_line(exc)


def _tab() -> Any:
    import pyarrow.csv as pacsv

    return pacsv.ParseOptions(delimiter="\t")


def _check_delimited(path: Path, kind: str) -> None:
    """Local .csv/.tsv input read strictly (sentiq.io.tables) before Ray reads it: Ray's reader refuses
    a row longer than the header too, but only in a worker, once labelling has begun."""
    files = [p for p in path.iterdir() if format_of(p) == kind] if path.is_dir() else [path] if path.is_file() else []
    for f in files:
        count_delimited(f, kind)


def _unreadable(path: str) -> str:
    """Why Ray cannot read `path`: not a format it reads, or a local folder of several formats or none."""
    folder = Path(path)
    found = sorted({p.suffix.lower() for p in folder.iterdir() if format_of(p)}) if folder.is_dir() else []
    if len(found) > 1:
        return f"--input {path} holds {' and '.join(found)} files: --backend ray reads a folder of one format"
    return f"--input {path}: --backend ray reads {suffixes(RAY_READS)}"


def _format_inside(path: str) -> str | None:
    """The one format of a local folder's files, or None; a remote folder holds Ray's own, parquet."""
    folder = Path(path)
    if folder.is_dir():
        found = {format_of(p) for p in folder.iterdir()} - {None}
        return found.pop() if len(found) == 1 else None
    return "parquet"


class RayPredictor:
    """evaluate's texts labelled on the cluster: the same rows a local run appends, gathered at once."""

    def __init__(self, model: ModelSettings, settings: RaySettings) -> None:
        self.model, self.settings = model, settings
        self.source = model.source  # a model that is nowhere fails here, not on every worker
        self.engine_info = connect(settings)
        self.where: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        from sentiq.core.models import home_relative

        s = self.source
        where = {"device": self.model.device, "dtype": self.model.dtype}  # as asked; what workers used is added
        info = {"model": home_relative(s.ref), "model_kind": s.kind, "model_label": s.label, "revision": None, **where}
        return {**info, "engine": self.engine_info, "max_batch_tokens": self.model.max_batch_tokens}

    def predict(
        self, plan: MethodPlan, todo: pd.DataFrame, calibration: CalibrationRecord | None = None
    ) -> Iterator[Labelled]:
        """Every row at once, when the cluster is done. No prior is carried over (`calibration`): only
        contextual calibration runs on Ray, from fixed inputs."""
        import ray.data

        ds = ray.data.from_pandas(todo[["id", "text"]].reset_index(drop=True))
        done = run(lambda: label(ds, self.model, plan, self.settings).to_pandas())
        self.where = (
            {"worker_device": done["device"].iloc[0], "worker_dtype": done["dtype"].iloc[0]} if len(done) else {}
        )
        seconds = float(done["latency_ms"].sum()) / 1000 if len(done) else 0.0
        yield Labelled(done.to_dict("records"), int(todo["text"].map(word_count).sum()), seconds)

    def peak_memory_bytes(self) -> int | None:
        return None
