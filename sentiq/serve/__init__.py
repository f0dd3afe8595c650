"""`sentiq serve`: one model behind an HTTP endpoint that batches concurrent requests (FastAPI and
uvicorn, from the `serve` extra). Above the library: it labels through `sentiq.Classifier`."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiq.errors import ModelError, OptionError
from sentiq.serve.settings import ServeSettings
from sentiq.settings import ClassifySettings, MethodConfig, ModelSettings

if TYPE_CHECKING:
    from sentiq.api import Classifier

CALIBRATION_TEXTS = ClassifySettings.chunk_size  # read at most: classify estimates its prior on a first chunk


def serve(
    model: ModelSettings,
    method: MethodConfig,
    settings: ServeSettings,
    *,
    tuned: bool = False,
    results_dir: str | Path = "results",
    log_level: str = "info",
) -> None:
    """Serve until SIGTERM or Ctrl-C: then take no new request, finish those in flight and return. A
    model that fails to load stops the server and raises its error."""
    uvicorn = _require_serve_extra()
    from sentiq.api.options import check_method, tuned_methods
    from sentiq.serve.app import Service, create_app

    (config,) = tuned_methods([method], model, tuned, results_dir)
    service = Service(settings, warm_up=_warm_up_texts(config, settings))
    check_method(config, model)  # a model that is nowhere, or a fit not for it, fails before the server says it runs
    app = create_app(lambda: _load(model, config), settings, service)
    listening = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level, access_log=settings.access_log
    )
    server = _draining_server()(listening, service)
    service.on_failure = lambda: setattr(server, "should_exit", True)
    with _listening(settings.host, settings.port) as sock, _stopped_by_signals_quietly(), _probes(service, settings):
        server.run(sockets=[sock])
    if service.state == "failed":
        raise ModelError(service.error or "the model failed to load")


@contextlib.contextmanager
def _stopped_by_signals_quietly() -> Iterator[None]:
    """uvicorn drains on SIGTERM and Ctrl-C, then raises the signal again for the handler it found: here,
    one that does nothing, so a drained service ends as a finished command does (exit 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _listening(host: str, port: int) -> Iterator[socket.socket]:
    """The service's socket, bound here so that an address in use or a host that is none ends in one line
    (uvicorn would log six and exit 3)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise OptionError(f"--host {host}: not an address to listen on ({_reason(exc)})") from None
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OptionError(f"--port {port}: cannot listen on {host}:{port} ({_reason(exc)})") from None
        yield sock


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _probes(service: Any, settings: ServeSettings) -> contextlib.AbstractContextManager:
    """The probe port's server, where one is asked for."""
    if settings.health_port is None:
        return contextlib.nullcontext()
    from sentiq.serve.probes import ProbeServer

    return ProbeServer(service, settings.host, settings.health_port)


def _load(model: ModelSettings, method: MethodConfig) -> Classifier:
    from sentiq.api import Classifier

    return Classifier.from_settings(model, method)


def _warm_up_texts(method: MethodConfig, settings: ServeSettings) -> list[str]:
    """What the model answers before the first request: for batch or domain calibration, the texts of
    --calibration-texts (the prior is estimated on them and kept, as a run of `classify` keeps the prior
    of its first texts); checked before the model loads."""
    sampled = method.calibrate in ("batch", "domain")
    if settings.calibration_texts is None:
        if sampled:
            raise OptionError(
                f"--calibrate {method.calibrate} estimates its prior from a sample of texts, and a service's "
                "requests are not one: give --calibration-texts FILE (in-domain texts, read at start)"
            )
        if settings.text_column is not None:
            raise OptionError("--text-column names the column of --calibration-texts: give both, or neither")
        return ["warming up"]
    if not sampled:
        raise OptionError("--calibration-texts is for --calibrate batch or domain")
    from sentiq.io.sources import open_source
    from sentiq.text import clean_text

    first = next(open_source(settings.calibration_texts, settings.text_column).chunks(CALIBRATION_TEXTS), None)
    texts = [] if first is None else [t for t in first["text"] if clean_text(t)]
    if not texts:
        raise OptionError(f"--calibration-texts {settings.calibration_texts}: no text to estimate the prior on")
    return texts


def _require_serve_extra() -> Any:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise OptionError(
            f"sentiq serve needs FastAPI and uvicorn ({exc.name} is missing): pip install 'sentiq[serve]'"
        ) from None
    return uvicorn


def _draining_server() -> type:
    """Made on first use: uvicorn is an optional dependency."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn's server, /ready turning false the moment a signal asks it to stop."""

        def __init__(self, config: Any, service: Any) -> None:
            super().__init__(config)
            self.service = service

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.service.state == "ready":
                self.service.state = "draining"
            super().handle_exit(sig, frame)

    return DrainingServer
