"""How `sentiq serve` listens, batches and refuses: the service's settings, their defaults and checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentiq.errors import OptionError


@dataclass(frozen=True)
class ServeSettings:
    """How `sentiq serve` listens, batches and refuses. Every limit is refused with its name and value."""

    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    health_port: int | None = None  # /health and /ready also answered here, on threads of their own
    api_key: str | None = None  # when set, every endpoint but /health asks for `Authorization: Bearer KEY`
    batching: bool = True  # False: one request per pass, for comparison
    max_batch_texts: int = 64  # texts one pass takes from the queue (the engine's token budget splits further)
    max_wait_ms: float = 5.0  # how long a pass waits for more requests to join it
    queue_texts: int = 1024  # texts waiting at most; beyond it requests are answered 503 at once
    max_texts: int = 256  # texts per request
    max_chars: int = 20_000  # characters per text
    max_body_bytes: int = 1_048_576  # request body
    timeout_s: float = 60.0  # a request's body and answer within it, else 408 (body) or 504 (answer)
    access_log: bool = False  # a line per request: under overload, a share of the event loop's time
    calibration_texts: Path | None = None  # batch or domain calibration: the prior is estimated on these at start
    text_column: str | None = None  # calibration_texts' column; None: 'text'

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.port <= 65535, "--port must be between 1 and 65535"),
            (self.health_port is None or 1 <= self.health_port <= 65535, "--health-port must be between 1 and 65535"),
            (self.health_port != self.port, "--health-port must differ from --port"),
            (self.max_batch_texts >= 1, "--max-batch-texts must be at least 1"),
            (self.max_wait_ms >= 0, "--max-wait-ms must be 0 or more"),
            (self.queue_texts >= self.max_texts, "--queue-texts must hold at least one request's --max-texts"),
            (self.max_texts >= 1 and self.max_chars >= 1, "--max-texts and --max-chars must be at least 1"),
            (self.max_body_bytes >= 1024, "--max-body-bytes must be at least 1024"),
            (self.timeout_s > 0, "--timeout must be above 0"),
            (self.api_key is None or len(self.api_key) >= 16, "--api-key must be at least 16 characters"),
            (
                self.api_key is None or all("!" <= c <= "~" for c in self.api_key),
                "--api-key must be printable ASCII without spaces: an HTTP header cannot carry other characters",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)
