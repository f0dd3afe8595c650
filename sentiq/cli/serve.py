"""`sentiq serve`: one model behind an HTTP endpoint that batches concurrent requests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentiq.cli import groups as g
from sentiq.cli import method_options as m
from sentiq.cli import options as o
from sentiq.cli.guard import guarded
from sentiq.serve.settings import ServeSettings
from sentiq.settings import MethodConfig, ModelSettings

PANEL = "Service"


def _limit(*names: str, help: str, **kwargs: object) -> typer.models.OptionInfo:  # noqa: A002 - Typer's name
    return typer.Option(*names, help=help, rich_help_panel=PANEL, **kwargs)


@guarded
@g.grouped
def serve(
    host: Annotated[str, _limit(help="Address to listen on (loopback unless told otherwise).")] = ServeSettings.host,
    port: Annotated[int, _limit(help="Port to listen on.")] = ServeSettings.port,
    health_port: Annotated[
        int | None,
        _limit(
            show_default=False,
            help="Also answer /health and /ready on this port, on threads of their own: probes stay quick under overload.",
        ),
    ] = ServeSettings.health_port,
    api_key: Annotated[
        str | None,
        _limit(
            envvar="SENTIQ_API_KEY",
            show_default=False,
            help="Require 'Authorization: Bearer KEY' on every endpoint but /health (16 characters or more).",
        ),
    ] = ServeSettings.api_key,
    batching: Annotated[
        bool, _limit("--batching/--no-batching", help="Join concurrent requests in one pass (off: one request a pass).")
    ] = ServeSettings.batching,
    max_batch_texts: Annotated[int, _limit(min=1, help="Texts one pass takes.")] = ServeSettings.max_batch_texts,
    max_wait_ms: Annotated[
        float, _limit(min=0, help="How long a pass waits for more requests to join it.")
    ] = ServeSettings.max_wait_ms,
    queue_texts: Annotated[
        int, _limit(min=1, help="Texts waiting at most; past it requests are answered 503 at once.")
    ] = ServeSettings.queue_texts,
    max_texts: Annotated[int, _limit(min=1, help="Texts per request.")] = ServeSettings.max_texts,
    max_chars: Annotated[int, _limit(min=1, help="Characters per text.")] = ServeSettings.max_chars,
    max_body_bytes: Annotated[int, _limit(min=1024, help="Bytes per request body.")] = ServeSettings.max_body_bytes,
    timeout: Annotated[
        float,
        _limit(
            min=0.001,
            help="Seconds a request may take, its body and its answer (408 while the body arrives, 504 after).",
        ),
    ] = ServeSettings.timeout_s,
    access_log: Annotated[
        bool, _limit("--access-log/--no-access-log", help="Log a line per request (/metrics counts them either way).")
    ] = ServeSettings.access_log,
    calibration_texts: Annotated[
        Path | None,
        _limit(
            show_default=False,
            help="For --calibrate batch or domain: in-domain texts (any file classify reads) the prior is "
            "estimated on at start, then kept.",
        ),
    ] = ServeSettings.calibration_texts,
    text_column: o.TextColumn = ServeSettings.text_column,
    method: m.Method = MethodConfig.method,
    models: ModelSettings = g.MODEL,
    method_options: g.MethodOptions = g.METHOD,
    seed: o.MethodSeed = MethodConfig.seed,
    tuning: dict = g.TUNED,
) -> None:
    """Serve a model over HTTP: POST /v1/classify, /health, /ready, /metrics, /docs (pip install 'sentiq\\[serve]')."""
    from sentiq.serve import serve as run_service

    limits = ServeSettings(
        host, port, health_port, api_key, batching, max_batch_texts, max_wait_ms, queue_texts, max_texts, max_chars,
        max_body_bytes, timeout, access_log, calibration_texts, text_column,
    )  # fmt: skip
    run_service(models, method_options.config(method, seed), limits, **tuning)
