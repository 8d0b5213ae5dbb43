"""Durations on the command line (``--lead 14d``, ``--if-older-than 30d``, ``--expires-in 12h``):
one parser for every option, so that each means the same thing.

A duration is a number with its unit, ``s``, ``m``, ``h`` or ``d`` (``14d``, ``12h``, ``1.5d``);
``0`` alone needs none. A bare number is refused rather than guessed: ``--lead 14`` was 14 seconds
where an operator meant 14 days. Negative, infinite and NaN values cannot be written, and each
option has a largest value, so nothing absurd reaches a timestamp.
"""

from __future__ import annotations

import re

from bridge.errors import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)([smhd])")


def parse_duration(text: str, *, option: str, maximum_days: int, example: str = "14d") -> float:
    """``text`` in seconds; ``ConfigError`` naming ``option`` when it is not a duration with a
    unit from 0 to ``maximum_days`` days."""
    value = text.strip()
    if value == "0":
        return 0.0
    match = _DURATION.fullmatch(value)
    if match is None:
        why = ("a number needs its unit" if re.fullmatch(r"[0-9.]+", value)
               else "not a duration")
        raise ConfigError(f"{option}: {text[:40]!r} is {why}: write it like {example}, 12h, 30m "
                          "or 45s (s, m, h or d), or 0")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds > maximum_days * 86400:
        raise ConfigError(f"{option}: {text[:40]!r} is longer than the most allowed, "
                          f"{maximum_days}d")
    return seconds
