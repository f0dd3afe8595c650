"""The HTTP service: POST /v1/classify through the dynamic batcher, /health, /ready, /metrics and the
OpenAPI page. The model loads on a thread after the server starts, so /health answers (and /ready says
no) while it loads; every error is one JSON object that says what went wrong and, for a limit, which."""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentiq.errors import SentiqError, first_line
from sentiq.predictions import UNCERTAIN
from sentiq.serve.batcher import Overloaded, RequestBatcher, Stopped
from sentiq.serve.metrics import ServiceMetrics
from sentiq.serve.requests import (
    LOG,
    ApiError,
    ClassifyRequest,
    ClassifyResponse,
    overloaded,
    read_body,
    request_texts,
)
from sentiq.serve.settings import ServeSettings

if TYPE_CHECKING:
    from sentiq.api import Classifier

ServiceState = Literal["loading", "ready", "draining", "failed"]
OPEN = ("/health",)  # answered without the API key: a load balancer's probe


@dataclass
class Service:
    """What the endpoints share: the settings, the metrics, and once loaded the classifier and batcher."""

    settings: ServeSettings
    state: ServiceState = "loading"
    arriving: int = 0  # classify requests read but not yet queued: worth a pass's wait
    error: str | None = None
    classifier: Classifier | None = None
    batcher: RequestBatcher | None = None
    on_failure: Callable[[], None] = lambda: None
    warm_up: list[str] = field(default_factory=lambda: ["warming up"])  # answered before the first request
    metrics: ServiceMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(lambda: self.batcher.depth if self.batcher else 0)

    def load(self, make: Callable[[], Classifier]) -> None:
        """Load the classifier, answer the warm-up texts (the first request should not pay for warming up;
        a sampled calibration prior is estimated on them), then take requests."""
        began = time.perf_counter()
        try:
            classifier = make()
            classifier.classify(self.warm_up)
        except Exception as exc:  # shown to the operator; the server stops
            self.state, self.error = "failed", first_line(exc) if isinstance(exc, SentiqError) else repr(exc)
            self.on_failure()
            return
        s = self.settings
        self.classifier = classifier
        self.batcher = RequestBatcher(
            lambda texts: classifier.fields(texts, "service"),  # the one rendering of a prediction
            batching=s.batching,
            max_batch_texts=s.max_batch_texts,
            max_wait_s=s.max_wait_ms / 1000,
            queue_texts=s.queue_texts,
            on_pass=self.metrics.on_pass,
            arriving=lambda: self.arriving,
        )
        if self.state == "loading":
            self.state = "ready"
            LOG.info("Ready: %r, loaded and warm in %.1f s", classifier, time.perf_counter() - began)

    def drain(self) -> None:
        """Take no new request; those queued are finished."""
        if self.state != "failed":
            self.state = "draining"
        if self.batcher is not None:
            self.batcher.stop()


def create_app(make: Callable[[], Classifier], settings: ServeSettings, service: Service | None = None) -> FastAPI:
    """The service over the classifier `make` returns (called once, on a thread, when the app starts)."""
    from contextlib import asynccontextmanager

    service = service or Service(settings)
    settings = service.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan shape
        threading.Thread(target=service.load, args=(make,), name="sentiq-load", daemon=True).start()
        yield
        await asyncio.to_thread(service.drain)

    app = FastAPI(
        title="sentiq",
        description="Sentiment of texts with a small instruction-tuned LLM; requests are batched together.",
        lifespan=lifespan,
    )
    app.state.service = service

    app.add_middleware(Guard, service=service, routes=lambda: {r.path for r in app.routes})  # type: ignore[attr-defined]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing's own answers (404, 405) in the body every other error has."""
        error = ApiError(exc.status_code, *_routing_error(exc.status_code, request))
        error.headers.update(exc.headers or {})
        return error.response()

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Alive: the process answers (whether or not the model is loaded)."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Ready for requests: the model loaded and warm, and not draining. 503 otherwise."""
        status, body = readiness(service)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format."""
        content, media_type = service.metrics.exposition()
        return Response(content, media_type=media_type)

    schema = {"content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}}, "required": True}

    @app.post("/v1/classify", response_model=ClassifyResponse, openapi_extra={"requestBody": schema})
    async def classify(request: Request) -> JSONResponse:
        """Label each text, in order: its label, every label's probability and, for methods that
        generate, the answer. Texts of concurrent requests are classified together."""
        started = time.perf_counter()
        service.arriving += 1
        try:
            texts = request_texts(await read_body(request, settings.max_body_bytes, settings.timeout_s), settings)
            if service.state != "ready" or service.batcher is None:
                error = ApiError(503, "not_ready", f"the service is {service.state}: try again shortly")
                error.headers["Retry-After"] = "1"
                raise error
        finally:
            service.arriving -= 1
        results = await _submit(service.batcher, texts, settings.timeout_s, started)
        service.metrics.latency.observe(time.perf_counter() - started)
        return JSONResponse(  # built here: response_model's validation of our own answer costs the event loop
            {
                **_described(service.classifier),
                "uncertain": sum(r["label"] == UNCERTAIN for r in results),
                "results": results,
            }
        )

    return app


class Guard:
    """Before any routing (plain ASGI: a refusal under overload should cost little): the API key where one
    is set, a classify request refused while the queue is full, and every answer counted by endpoint and
    status."""

    def __init__(self, app: Any, service: Service, routes: Callable[[], set[str]]) -> None:
        self.app, self.service, self.routes = app, service, routes
        self.known: set[str] | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal.response()(scope, receive, counted)
        else:
            await self.app(scope, receive, counted)
        self.known = self.known or self.routes()
        endpoint = scope["path"] if scope["path"] in self.known else "other"
        self.service.metrics.requests.labels(endpoint, str(status["code"])).inc()

    def _refusal(self, scope: dict) -> ApiError | None:
        settings, batcher, path = self.service.settings, self.service.batcher, scope["path"]
        if settings.api_key and (key_refusal := unauthorized(settings, path, Headers(scope=scope))):
            return key_refusal
        if path == "/v1/classify" and batcher is not None and batcher.depth >= settings.queue_texts:
            return overloaded(f"the queue holds its {settings.queue_texts} texts")
        return None


async def _submit(batcher: RequestBatcher, texts: list[str], timeout: float, started: float) -> list[Any]:
    """The texts' results, within what is left of the request's `timeout` since `started`."""
    try:
        return await asyncio.wait_for(batcher.submit(texts), timeout - (time.perf_counter() - started))
    except Overloaded as exc:
        raise overloaded(str(exc)) from None
    except Stopped:
        raise ApiError(503, "shutting_down", "the service is shutting down") from None
    except TimeoutError:
        raise ApiError(504, "timeout", f"no answer within {timeout:g} s", "timeout_s", timeout) from None
    except SentiqError as exc:
        raise ApiError(500, "classify_failed", first_line(exc)) from None
    except Exception as exc:  # the model failed on this request's texts
        raise ApiError(500, "classify_failed", f"{type(exc).__name__}: {first_line(exc)}") from None


def _routing_error(status: int, request: Request) -> tuple[str, str]:
    if status == 404:
        return "not_found", f"no endpoint {request.url.path}: see /docs"
    if status == 405:
        return "method_not_allowed", f"{request.url.path} does not take {request.method}: see /docs"
    return "http_error", HTTPStatus(status).phrase


def readiness(service: Service) -> tuple[int, dict[str, Any]]:
    """/ready's status and body: 200 once the model is loaded and warm and the service not draining."""
    body: dict[str, Any] = {"ready": service.state == "ready", "state": service.state}
    if service.classifier is not None:
        body |= _described(service.classifier)
        if service.classifier.calibration is not None:
            body["calibration"] = service.classifier.calibration.as_dict()
    if service.error:
        body["error"] = service.error
    return (200 if body["ready"] else 503), body


def unauthorized(settings: ServeSettings, path: str, headers: Any) -> ApiError | None:
    """The 401 for a request to `path` without the API key, where one is set (/health never asks)."""
    if not settings.api_key or path in OPEN or _authorized(headers, settings.api_key):
        return None
    error = ApiError(401, "unauthorized", "send the API key as 'Authorization: Bearer KEY'")
    error.headers["WWW-Authenticate"] = "Bearer"
    return error


def _authorized(headers: Any, key: str) -> bool:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


def _described(classifier: Classifier) -> dict[str, Any]:
    return {
        "model": classifier.source.label,
        "method": classifier.method.title(),
        "labels": list(classifier.labels),
        "abstention": classifier.abstention,
    }
