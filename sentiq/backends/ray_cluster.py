"""Joining a Ray cluster, or starting a local one, and making sure the actor pool fits it: the address
answers, the cluster's token is sent, a pool the cluster cannot place is refused in seconds (or, with an
autoscaler, waited for), and Ray's own retry noise is held back unless SENTIQ_DEBUG is set."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sentiq.errors import OptionError, SentiqError, debugging, first_line
from sentiq.settings import RaySettings
from sentiq.text import plural

logger = logging.getLogger("sentiq")
GROW_POLL_S = 5.0  # how often a growing cluster is looked at again
RELEASE_S = 10.0  # how long an earlier job's actors in this process are given to free their CPUs


def connect(settings: RaySettings) -> dict[str, Any]:
    """Join the cluster at --ray-address (or RAY_ADDRESS), or start a local one in this process with
    this machine's cores plus one CPU for reading; then make sure the actor pool can be placed (Ray Data
    otherwise waits for it forever, or, on a local cluster sized to any request, starts a model per
    worker on too few cores). What config.json records about the engine."""
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        _use_token_if_present()
    import ray

    reused = ray.is_initialized()
    if not reused:
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
    _require_room(settings, address or "local", RELEASE_S if reused else 0.0)
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
            package = str(Path(__file__).resolve().parents[1])  # sentiq's folder, shipped to the workers
            ray.init(address=address, runtime_env={"py_modules": [package]}, **_quiet())
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


def _require_room(settings: RaySettings, address: str, release: float = 0.0) -> None:
    """Refuse, in seconds, an actor pool the cluster cannot place (with a CPU kept for reading): Ray Data
    would wait for it forever. A cluster with an autoscaler is asked to grow and given --grow-timeout.
    `release`: seconds given to the actors of this process's earlier jobs, which Ray frees in the
    background, before the room is judged."""
    deadline = time.monotonic() + (release if _fits_when_idle(settings) else 0.0)
    fits, there = _room(settings)
    while fits < settings.workers and time.monotonic() < deadline:
        time.sleep(0.25)
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
    there = f"{plural(cpus, 'free CPU')} and {plural(gpus, 'free GPU')} on {plural(len(nodes), 'node')}"
    return min(placed, reading), there


def _fits_when_idle(settings: RaySettings) -> bool:
    """Whether the pool would fit the whole cluster with nothing running (its totals seen as one node)."""
    import ray

    total = ray.cluster_resources()
    need = _bundle(settings)
    cpus = total.get("CPU", 0.0) - 1  # one kept for reading
    return all(total.get(k, 0.0) >= v * settings.workers for k, v in need.items() if k != "CPU") and (
        cpus >= settings.cpus_per_worker * settings.workers
    )


def _can_grow() -> bool:
    """Whether an autoscaler may add nodes (Ray Data's own test: a node type with room to scale up)."""
    try:
        from ray.data._internal.cluster_autoscaler.util import is_autoscaling_enabled

        return bool(is_autoscaling_enabled())
    except Exception:
        return False


def _no_room(settings: RaySettings, address: str, fits: int, there: str) -> str:
    gpus = f" and {plural(settings.gpus_per_worker, 'GPU')}" if settings.gpus_per_worker else ""
    return (
        f"{plural(settings.workers, 'worker')} of {plural(settings.cpus_per_worker, 'CPU')}{gpus} each, and 1 CPU "
        f"to read the data, {'does' if settings.workers == 1 else 'do'} not fit the Ray cluster at {address}: it has "
        f"{there}, room for {plural(fits, 'such worker')}; use fewer --workers or smaller "
        "--cpus-per-worker/--gpus-per-worker"
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
