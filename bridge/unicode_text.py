"""Strings that are not Unicode text. JSON's ``\\u`` escapes can name a lone surrogate
(``"\\ud800"``), which Python's parser gives back as a ``str`` that no UTF-8 encoder accepts: stored
or shown, it fails where it is written to the database or to a page. Every JSON the bridge reads
from a request, and every setting, is held to Unicode scalar values here.
"""

from __future__ import annotations

from typing import Any


def is_text(value: str) -> bool:
    """Whether ``value`` is Unicode scalar values only (no surrogate code point)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def not_text_at(value: Any, where: str = "") -> str | None:
    """Where in a decoded JSON value (``where`` its name) the first string, object keys
    included, that is not Unicode text is (``settings.display_name``, ``names[2]``); None when
    there is none. Iterative: a value nested as deeply as a parser allows is walked too."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return at or "the value"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and not is_text(key):
                    return _member(at, ascii(key))
                stack.append((sub, _member(at, str(key))))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{at}[{index}]") for index, sub in enumerate(item))
    return None


def _member(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def not_text_problem(where: str) -> str:
    return (f"{where}: not valid Unicode text (a lone surrogate such as \\ud800, which no "
            "character is)")


def as_text(value: Any) -> Any:
    """``value`` (decoded JSON) with every lone surrogate replaced by U+FFFD: for showing what
    was stored before such strings were refused, never for storing."""
    if isinstance(value, str):
        return value if is_text(value) else value.encode("utf-8", "surrogatepass").decode(
            "utf-8", "replace")
    if isinstance(value, dict):
        return {as_text(key): as_text(sub) for key, sub in value.items()}
    if isinstance(value, list):
        return [as_text(sub) for sub in value]
    return value
