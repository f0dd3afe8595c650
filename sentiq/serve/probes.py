"""/health and /ready on a port of their own, answered on threads of their own (the standard library's
HTTP server): a load balancer's probe should not wait behind the thousands of requests an overloaded
server's event loop is refusing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sentiq.errors import OptionError


class ProbeServer:
    """Answers GET /health (always) and GET /ready (the API key asked for where one is set) for `service`."""

    def __init__(self, service: Any, host: str, port: int) -> None:
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(service))
        except OSError as exc:
            raise OptionError(f"--health-port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="sentiq-probes", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self) -> ProbeServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(service: Any) -> type[BaseHTTPRequestHandler]:
    from sentiq.serve.app import readiness, unauthorized
    from sentiq.serve.requests import ApiError

    class Probe(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a prober may reuse its connection

        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            path = self.path.split("?")[0]
            refusal = unauthorized(service.settings, path, self.headers)
            if path not in ("/health", "/ready"):
                refusal = ApiError(404, "not_found", "this port answers /health and /ready")
            if refusal is not None:
                self._send(refusal.status, refusal.body(), refusal.headers)
            elif path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(*readiness(service))

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            content = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - probes are not worth a log line
            pass

    return Probe
