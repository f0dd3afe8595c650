"""How a command ends: errors a user can cause as one line and exit 1, Ctrl-C/SIGTERM 130 with what was
kept, a closed pipe 141, library warnings as warnings; tracebacks only with SENTIQ_DEBUG=1."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from sentiq.cli import render
from sentiq.errors import Interrupted, OutputClosed, SentiqError, command_line, debugging

F = TypeVar("F", bound=Callable[..., Any])
INTERRUPTED = 130
OUTPUT_CLOSED = 141  # 128 + SIGPIPE


def guarded(func: F) -> F:
    """Errors a user can cause end as one line and exit 1; Ctrl-C/SIGTERM exit 130 with what was kept;
    library warnings shown as warnings; tracebacks only with SENTIQ_DEBUG=1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = debugging()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        warnings = render.WarningHandler()
        logging.getLogger("sentiq").addHandler(warnings)
        try:
            with command_line():
                return func(*args, **kwargs)
        except typer.Exit:
            raise
        except (OutputClosed, BrokenPipeError) as exc:  # `| head`: stop quietly, as Unix tools do
            _silence_stdout()
            if isinstance(exc, OutputClosed) and str(exc):  # what an --output keeps
                render.error(f"standard output was closed; {exc}")
            raise typer.Exit(OUTPUT_CLOSED) from None
        except (Interrupted, KeyboardInterrupt) as exc:
            render.error(str(exc) if isinstance(exc, Interrupted) else "interrupted")
            raise typer.Exit(INTERRUPTED) from None
        except SentiqError as exc:
            if debug:
                raise
            render.error(str(exc))
            raise typer.Exit(1) from None
        except Exception as exc:
            if debug:
                raise
            render.error(f"{type(exc).__name__}: {exc} (set SENTIQ_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None
        finally:
            logging.getLogger("sentiq").removeHandler(warnings)
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit meets no closed pipe either."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
