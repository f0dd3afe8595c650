"""What a request to the service may be, and the error each thing wrong with one gets: the JSON
schemas of /v1/classify, and the reading of its body against the service's limits. Every refusal is an
ApiError, answered as one JSON object naming what went wrong and, for a limit, which."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from sentiq.errors import first_line
from sentiq.serve.settings import ServeSettings
from sentiq.text import lone_surrogate

LOG = logging.getLogger("uvicorn.error")  # the server's own log: its lines read as uvicorn's do


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field the service does not read is refused, never ignored

    texts: list[str] = Field(description="The texts to label, at most max_texts of at most max_chars characters.")


class TextResult(BaseModel):
    label: str = Field(
        description="One of the labels, 'invalid' (an answer that names none, or an empty text) or 'uncertain' "
        "(its label less probable than the abstention threshold: its scores are kept)."
    )
    scores: dict[str, float] | None = Field(
        description="Every label's probability; null for an invalid answer, or one that named its label by no "
        "label token."
    )
    answer: str | None = Field(description="The generated answer(s), for methods that generate.")
    truncated: bool = Field(description="The text was longer than max_tokens and lost its middle.")
    exit: int | None = Field(
        None, description="A fit with early exits or a second model: the layer whose probe labelled the text."
    )
    exit_model: str | None = Field(
        None, description="A cascade across models: the model of that layer (absent: the first model's)."
    )


class ClassifyResponse(BaseModel):
    model: str
    method: str
    labels: list[str]
    abstention: dict[str, float | int] | None = Field(
        description="Where the service abstains (--min-confidence or --target-accuracy): the threshold, and "
        "for a target the 95% bound and the coverage it was chosen for; null when it labels every text."
    )
    uncertain: int = Field(description="Texts of this request labelled 'uncertain'.")
    results: list[TextResult]


class ApiError(Exception):
    """An answer other than 200: its status, a short type, a message and, for a limit, its name and value."""

    def __init__(self, status: int, kind: str, message: str, limit: str | None = None, value: float | None = None):
        super().__init__(message)
        self.status, self.kind, self.limit, self.value = status, kind, limit, value
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "message": str(self)}
        if self.limit is not None:
            error |= {"limit": self.limit, "value": self.value}
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def overloaded(why: str) -> ApiError:
    error = ApiError(503, "overloaded", f"too many texts are waiting ({why}): retry after a second")
    error.headers["Retry-After"] = "1"
    return error


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (declared or streamed) or takes longer
    than `timeout` to arrive (a client trickling its body would hold a connection for ever)."""
    try:
        return await asyncio.wait_for(_read(request, limit), timeout)
    except TimeoutError:
        error = ApiError(
            408, "body_timeout", f"the body did not arrive within {timeout:g} s", "timeout_s", int(timeout)
        )
        error.headers["Connection"] = "close"
        raise error from None


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_big = ApiError(413, "body_too_large", f"the request body is over {limit} bytes", "max_body_bytes", limit)
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except ClientDisconnect:
        LOG.info("a client closed its connection before its request body arrived (%d bytes read)", size)
        raise ApiError(400, "client_disconnected", "the connection closed before the body arrived") from None
    return b"".join(chunks)


def request_texts(body: bytes, settings: ServeSettings) -> list[str]:
    """The request's texts, checked against the limits: one error naming the first thing wrong."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_utf8", f"the body is not valid UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {first_line(exc)}") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "the body nests arrays or objects too deeply to read") from None
    try:
        texts = ClassifyRequest.model_validate(data).texts
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", f'{_invalid(exc)} (send {{"texts": ["...", ...]}})') from None
    if not texts:
        raise ApiError(422, "invalid_request", "texts: the list is empty (send at least one text)")
    if len(texts) > settings.max_texts:
        message = f"texts: {len(texts)} texts, more than the limit of {settings.max_texts} per request"
        raise ApiError(422, "too_many_texts", message, "max_texts", settings.max_texts)
    long = next((i for i, t in enumerate(texts) if len(t) > settings.max_chars), None)
    if long is not None:
        message = f"texts.{long}: {len(texts[long])} characters, more than the limit of {settings.max_chars}"
        raise ApiError(422, "text_too_long", message, "max_chars", settings.max_chars)
    broken = next(((i, at) for i, t in enumerate(texts) if (at := lone_surrogate(t)) is not None), None)
    if broken is not None:
        i, at = broken
        message = f"texts.{i}: a lone surrogate (\\u{ord(texts[i][at]):04x}) at character {at} is not a character"
        raise ApiError(400, "invalid_text", message)
    return texts


def _invalid(exc: ValidationError) -> str:
    """The first thing wrong with a request, or every field it has that the service does not read."""
    unknown = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "extra_forbidden"]
    if unknown:
        return f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the request takes only texts"
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}"
