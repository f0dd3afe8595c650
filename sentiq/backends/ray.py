"""The same classifier on a Ray cluster, through Ray Data: texts are read as blocks, labelled by a pool
of actors that each load the model once and call the same `Classifier` as the local engine, and
written or gathered. Nothing imports ray unless `--engine ray` is asked for (`pip install 'sentiq[ray]'`).

Seeds are per text, and predictions do not depend on batching, so a text gets the same label on
Ray as on the local engine. Ray Data retries the blocks of an actor that dies, and restarts it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from sentiq.errors import DataError, ModelError, OptionError, SentiqError, debugging, first_line
from sentiq.io.formats import RAY_READS, RAY_WRITES, format_of, suffixes
from sentiq.methods.prompts import load_prompts
from sentiq.predictions import LABELLED_FIELDS, labelled
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings, RaySettings

if not debugging():  # Ray Data's INFO lines are progress told twice
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
logger = logging.getLogger("sentiq")
GROW_POLL_S = 5.0  # how often a growing cluster is looked at again
ARROW_TYPES: dict[str, tuple[str, Callable[[Any], Any]]] = {  # a labelled row's fields as Arrow columns
    "label": ("string", str),
    "answer": ("string", lambda a: a or ""),
    **dict.fromkeys(("p_positive", "p_positive_raw", "latency_ms"), ("float64", lambda x: x)),
    **dict.fromkeys(("tokens", "truncated"), ("int64", int)),
}


class LabelBatch:
    """A Ray Data actor: the model loaded once, every batch labelled by the local engine's Classifier.
    Empty texts are dropped (they have no sentiment); each row carries its share of the batch's time."""

    def __init__(self, model: ModelSettings, method: MethodConfig, threads: int, prompts: list) -> None:
        import torch

        from sentiq.core.engine import load_engine
        from sentiq.io.datasets import load_pool
        from sentiq.methods.classifier import Classifier

        torch.set_num_threads(threads)
        try:
            engine = load_engine(model)
        except SentiqError:
            raise
        except Exception as exc:  # safetensors, torch and others: the driver reads this line
            raise ModelError(f"cannot load model {model.model}: {first_line(exc)}") from exc
        pool = load_pool() if method.method == "k-shot" else None
        self.clf = Classifier(engine, method, pool=pool, prompts=prompts)
        self.clf.warm_up()
        self.where = self.clf.engine.lm.describe()

    def __call__(self, batch: pd.DataFrame) -> Any:
        from sentiq.text import clean_text

        batch = batch[batch["text"].astype(str).map(lambda t: bool(clean_text(t)))].reset_index(drop=True)
        start = time.perf_counter()
        preds = self.clf.predict(list(batch["text"].astype(str))) if len(batch) else []
        per_text = 1000 * (time.perf_counter() - start) / max(1, len(batch))
        import pyarrow as pa

        table = pa.Table.from_pandas(batch.assign(id=batch["id"].astype(str)), preserve_index=False)
        rows = [labelled(i, t, p, per_text) for i, t, p in zip(batch["id"], batch["text"], preds)]
        for name in LABELLED_FIELDS[2:]:  # typed, so that a block with no probability at all still writes doubles
            kind, normal = ARROW_TYPES[name]
            table = table.append_column(name, pa.array([normal(r[name]) for r in rows], type=pa.type_for_alias(kind)))
        for name in ("device", "dtype"):
            table = table.append_column(name, pa.array([self.where[name]] * len(rows), type=pa.string()))
        return table


def connect(settings: RaySettings) -> dict[str, Any]:
    """Join the cluster at --ray-address (or RAY_ADDRESS), or start a local one in this process with
    this machine's cores plus one CPU for reading; then make sure the actor pool can be placed (Ray Data
    otherwise waits for it forever, or, on a local cluster sized to any request, starts a model per
    worker on too few cores). What config.json records about the engine."""
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        _use_token_if_present()
    import ray

    if not ray.is_initialized():
        if address:
            _require_reachable(address)
            _join(address)
        else:
            if not debugging():  # "token authentication is enabled": a local cluster makes its own token
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            try:  # this machine's cores for the workers, and a CPU slot for reading (light work)
                ray.init(num_cpus=(os.cpu_count() or 1) + 1, include_dashboard=False, **_quiet())
            except Exception as exc:  # RuntimeError, ValueError...
                raise SentiqError(f"cannot start a local Ray cluster: {first_line(exc)}") from exc
    _require_room(settings, address or "local")
    cpus = ray.cluster_resources().get("CPU", 0)
    return {"name": "ray", "address": address or "local", "workers": settings.workers, "cpus": cpus}


def _use_token_if_present() -> None:
    """`ray start` protects a cluster with the token in ~/.ray/auth_token when there is one, but a client
    given an address only sends it in RAY_AUTH_MODE=token: where the user has not chosen a mode and a
    token is at hand, send it (a cluster without authentication ignores it)."""
    if "RAY_AUTH_MODE" in os.environ or _token_source() is None:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:  # Ray read its configuration on import: read it again, as `ray start` does
        with contextlib.suppress(Exception):
            from ray._raylet import Config

            Config.initialize("")


def _token_source() -> str | None:
    """Where Ray would take an authentication token from, if anywhere."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path and Path(path).is_file():
        return path
    default = Path.home() / ".ray" / "auth_token"
    return str(default).replace(str(Path.home()), "~", 1) if default.is_file() else None


def _join(address: str) -> None:
    """ray.init on an existing cluster. Ray's C++ client prints every retry straight to file descriptor 2
    (a screen of lines when a token is refused); they are held back and read for the one-line verdict."""
    import ray

    with _held_stderr(enabled=not debugging()) as held:
        try:
            import sentiq

            ray.init(address=address, runtime_env={"py_modules": [sentiq]}, **_quiet())
            return
        except Exception as exc:  # ConnectionError, AuthenticationError, TimeoutError, RuntimeError...
            failure, said = exc, f"{held()}\n{exc}"
    if "InvalidAuthToken" in said or "Unauthenticated" in said or type(failure).__name__ == "AuthenticationError":
        raise SentiqError(_auth_advice(address)) from failure
    raise SentiqError(f"cannot reach the Ray cluster at {address}: {first_line(failure)}") from failure


def _auth_advice(address: str) -> str:
    mode, token = os.environ.get("RAY_AUTH_MODE", ""), _token_source()
    if mode.lower() == "disabled":
        how = "RAY_AUTH_MODE=disabled is set here: unset it, and have the cluster's token in ~/.ray/auth_token"
    elif token is None:
        how = (
            "this machine has none: put the cluster's token (ray get-auth-token on its head node) in ~/.ray/auth_token"
        )
    else:
        how = f"the one in {token} is not this cluster's: put the cluster's token (ray get-auth-token on its head node) there"
    return f"the Ray cluster at {address} asks for an authentication token, and {how} (or in RAY_AUTH_TOKEN)"


@contextlib.contextmanager
def _held_stderr(enabled: bool = True) -> Iterator[Callable[[], str]]:
    """File descriptor 2 redirected to a temporary file while the block runs; yields a reader of it."""
    import tempfile

    if not enabled:
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield lambda: (held.seek(0), held.read().decode("utf-8", "replace"))[1]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _require_room(settings: RaySettings, address: str) -> None:
    """Refuse, in seconds, an actor pool the cluster cannot place (with a CPU kept for reading): Ray Data
    would wait for it forever. A cluster with an autoscaler is asked to grow and given --grow-timeout."""
    fits, there = _room(settings)
    if fits >= settings.workers:
        return
    if not _can_grow():
        raise OptionError(_no_room(settings, address, fits, there))
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[_bundle(settings)] * settings.workers + [{"CPU": 1}])
    logger.warning(
        "the Ray cluster at %s has room for %d of %d workers now (%s): waiting up to %gs for it to grow",
        address,
        fits,
        settings.workers,
        there,
        settings.grow_timeout,
    )
    deadline = time.monotonic() + settings.grow_timeout
    while time.monotonic() < deadline:
        time.sleep(min(GROW_POLL_S, max(0.0, deadline - time.monotonic())))
        fits, there = _room(settings)
        if fits >= settings.workers:
            return
    waited = f"after waiting {settings.grow_timeout:g}s for the cluster to grow"
    raise OptionError(_no_room(settings, address, fits, there) + f" ({waited})")


def _bundle(settings: RaySettings) -> dict[str, float]:
    return {"CPU": settings.cpus_per_worker, **({"GPU": settings.gpus_per_worker} if settings.gpus_per_worker else {})}


def _room(settings: RaySettings) -> tuple[int, str]:
    """How many workers of this size the cluster's free resources hold (each on one node, one CPU left
    over for reading), and those resources in words."""
    import ray

    try:
        from ray._private.state import available_resources_per_node

        nodes = list(available_resources_per_node().values())
    except Exception:  # a Ray without it: the cluster seen as one node
        nodes = [ray.available_resources()]
    need = _bundle(settings)
    placed = sum(min(int(node.get(k, 0.0) / v + 1e-9) for k, v in need.items()) for node in nodes)
    cpus = sum(node.get("CPU", 0.0) for node in nodes)
    gpus = sum(node.get("GPU", 0.0) for node in nodes)
    reading = max(0, int((cpus - 1) / settings.cpus_per_worker + 1e-9))  # one CPU kept for reading
    there = f"{cpus:g} free CPUs and {gpus:g} free GPUs on {len(nodes)} {'node' if len(nodes) == 1 else 'nodes'}"
    return min(placed, reading), there


def _can_grow() -> bool:
    """Whether an autoscaler may add nodes (Ray Data's own test: a node type with room to scale up)."""
    try:
        from ray.data._internal.cluster_autoscaler.util import is_autoscaling_enabled

        return bool(is_autoscaling_enabled())
    except Exception:
        return False


def _no_room(settings: RaySettings, address: str, fits: int, there: str) -> str:
    gpus = f" and {settings.gpus_per_worker:g} GPUs" if settings.gpus_per_worker else ""
    return (
        f"{settings.workers} workers of {settings.cpus_per_worker:g} CPUs{gpus} each, and 1 CPU to read the data, "
        f"do not fit the Ray cluster at {address}: it has {there}, room for {fits} such "
        f"{'worker' if fits == 1 else 'workers'}; use fewer --workers or smaller --cpus-per-worker/--gpus-per-worker"
    )


def _quiet() -> dict[str, Any]:
    """Workers' own output stays in Ray's logs (sentiq reports their failures in one line)."""
    debug = debugging()
    return {"logging_level": logging.INFO if debug else logging.WARNING, "log_to_driver": debug}


def _require_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes (ray.init retries for long), when nothing answers at the address."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():  # 'auto', 'local' and the like: Ray resolves them itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise SentiqError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it with 'ray start --head' "
            "or check --ray-address / RAY_ADDRESS"
        ) from exc


def label(
    ds: Any, model: ModelSettings, method: MethodConfig, settings: RaySettings, runtime_env: dict | None = None
) -> Any:
    """The dataset's rows (id, text, ...) with the prediction columns added, by a pool of actors."""
    import ray.data

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
        fn_constructor_kwargs={
            "model": model,
            "method": method,
            "threads": threads,
            "prompts": load_prompts(method.prompt),
        },
        compute=ray.data.ActorPoolStrategy(size=settings.workers),
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker,
        batch_size=None,  # a whole block per call: the engine sorts and batches within it
        batch_format="pandas",
        runtime_env=runtime_env,
    )


def read(path: str, text_column: str | None, keep: tuple[str, ...]) -> Any:
    """Any path Ray Data reads (a file, a folder, s3://...), as rows of id, text and the kept columns.
    Row numbers are not stable across workers, so the input needs an `id` column to join back on."""
    import ray.data

    kind = format_of(path) if Path(path).suffix else _format_inside(path)
    if kind is None:
        raise DataError(f"--input {path}: --engine ray reads {suffixes(RAY_READS)}")
    if kind not in RAY_READS:
        raise DataError("--engine ray needs an 'id' column to join labels back: use .csv, .jsonl or .parquet input")
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
            f"{path}: no column '{missing[0]}' (--engine ray needs an id column and the text); "
            f"columns are: {', '.join(columns)}"
        )
    selected = ds.select_columns(list(dict.fromkeys(needed)))
    return selected.rename_columns({column: "text"}) if column != "text" else selected


def write(ds: Any, output: Path, columns: list[str], overwrite: bool = False) -> int:
    """Ray Data writes a folder of files at `output` (one file per block, as Spark does); the rows written.
    `overwrite` replaces what the folder (or a file of that name) held."""
    from ray.data import SaveMode

    kind = format_of(output, RAY_WRITES)
    if kind is None:
        raise DataError(f"--output {output}: --engine ray writes {suffixes(RAY_WRITES)} (a folder of files)")
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
        from sentiq.core.models import resolve_source

        self.model, self.settings = model, settings
        self.source = resolve_source(model.model)  # a model that is nowhere fails here, not on every worker
        self.engine_info = connect(settings)
        self.where: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        s = self.source
        where = {"device": self.model.device, "dtype": self.model.dtype}  # as asked; what workers used is added
        info = {"model": s.ref, "model_kind": s.kind, "model_label": s.label, "revision": None, **where}
        return {**info, "engine": self.engine_info, "max_batch_tokens": self.model.max_batch_tokens}

    def predict(self, method: MethodConfig, todo: pd.DataFrame, keep: Any, advance: Any, _run: Any) -> None:
        """The run folder (`_run`) is not needed: only contextual calibration runs on Ray, from fixed inputs."""
        import ray.data

        ds = ray.data.from_pandas(todo[["id", "text"]].reset_index(drop=True))
        done = run(lambda: label(ds, self.model, method, self.settings).to_pandas())
        self.where = (
            {"worker_device": done["device"].iloc[0], "worker_dtype": done["dtype"].iloc[0]} if len(done) else {}
        )
        keep(done.to_dict("records"))
        advance(len(done))

    def peak_memory_bytes(self) -> int | None:
        return None
