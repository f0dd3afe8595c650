"""The Hugging Face hub, for models and datasets: fail in seconds, with the fix, when it is out of reach."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from sentiq.errors import SentiqError


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def require_hub(what: str, fix: str, error: type[SentiqError], timeout: float = 5.0) -> None:
    """Raise `error` at once when offline mode is set or the hub host does not answer; the libraries
    would otherwise retry for about a minute before giving up."""
    if offline():
        raise error(f"{what} is not in the local cache and HF_HUB_OFFLINE is set: {fix}")
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise error(f"cannot reach {host} to download {what} ({exc.strerror or exc}): {fix}") from exc
