"""The options of early exits and cascades across models (--exits, --max-loss), checked where every
other setting is: light to import."""

from __future__ import annotations

from numbers import Integral, Real

from sentiq.errors import OptionError

MAX_LOSS = 0.01  # the accuracy early exits may give up against the last layer's probe alone


def check_exits(exits: object, last: int | None) -> tuple[int, ...]:
    """Early exits as layers counted from 1, each deeper than the one before, all before the `last` layer
    (always an exit; None: not known yet); one line otherwise."""
    if isinstance(exits, str | bytes) or not isinstance(exits, list | tuple):
        raise TypeError(f"exits must be a list of layer numbers, not {type(exits).__name__}")
    if not all(isinstance(k, Integral) and not isinstance(k, bool) for k in exits):
        raise TypeError("exits must be whole layer numbers")
    given = ", ".join(map(str, exits))
    if any(k < 1 or (last is not None and k >= last) for k in exits):
        top = f"between 1 and {last - 1} (layer {last} is the last exit)" if last is not None else "at least 1"
        raise OptionError(f"--exits must be layers {top}, not {given}")
    if list(exits) != sorted(set(exits)):
        raise OptionError(f"--exits must be layers in increasing order, each once, not {given}")
    return tuple(int(k) for k in exits)


def check_max_loss(value: object) -> float:
    """--max-loss as a float in [0, 1); one line otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"max_loss must be a number in [0, 1), not {type(value).__name__}")
    if not 0 <= float(value) < 1:  # NaN fails both
        raise OptionError(f"--max-loss must be at least 0 and below 1 (the accuracy given up), not {value}")
    return float(value)
