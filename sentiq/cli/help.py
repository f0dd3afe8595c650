"""How `--help` reads at 80 columns: a flag shows no type (Typer 0.29 prints `<bool>` for every flag,
`--help` included), a number its type alone (the range is what the error names) and choices wrap
between choices, so the help text keeps a column wide enough to read and no word is split."""

from __future__ import annotations

from typing import Any


def compact_types() -> None:
    """Typer's option type column, shortened; a Typer without these hooks is left as it is."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # pragma: no cover - an older Typer prints no such column
        return
    for kind in (TyperOption, TyperArgument):
        shown = getattr(kind, "display_type_rich", None)
        if shown is None or getattr(shown, "_compact", False):
            continue
        kind.display_type_rich = _compact(shown)  # type: ignore[method-assign]
        if hasattr(kind, "_get_number_range_help_str"):
            kind._get_number_range_help_str = lambda self: ""  # type: ignore[method-assign]


def _compact(shown: Any) -> Any:
    def display(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False):
            return None
        text = shown(self, ctx)
        if not isinstance(text, str):
            return text
        return text.replace(" range>", ">").replace("|", " | ")  # choices wrap between words, not inside one

    display._compact = True  # type: ignore[attr-defined]
    return display
