"""The `sentiq` command: Typer options in, one call of the library API, results rendered by Rich."""

from sentiq.cli.app import app, main

__all__ = ["app", "main"]
