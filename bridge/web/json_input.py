"""JSON from requests and form fields. Input nested deeper than the parser can follow raises
RecursionError, not ValueError, so Flask's ``silent`` does not catch it: here it is refused like
any other JSON that does not parse, never a 500. A string that is not Unicode text (a lone
surrogate, ``"\\ud800"``) is refused as invalid input naming where it is: stored, it would break
every page and answer that shows it (bridge.unicode_text)."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from bridge.errors import InvalidInput
from bridge.unicode_text import not_text_at, not_text_problem


def request_json() -> Any | None:
    """The request's JSON body; None when it has none or it does not parse. Raise
    ``InvalidInput`` when a string in it is not Unicode text."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return None
    refuse_non_text(body, "body")
    return body


def refuse_non_text(value: Any, where: str) -> None:
    """Raise ``InvalidInput`` naming where a string of ``value`` is not Unicode text."""
    at = not_text_at(value, where)
    if at is not None:
        raise InvalidInput(not_text_problem(at))


def form_json(text: str, field: str) -> Any:
    """A form field's JSON, refused as ``InvalidInput`` naming ``field`` when it does not parse."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{field}: not valid JSON ({error})") from None
    except RecursionError:
        raise InvalidInput(f"{field}: not valid JSON (nested too deeply)") from None
    refuse_non_text(value, field)
    return value
