"""JSON from requests and form fields. Input nested deeper than the parser can follow raises
RecursionError, not ValueError, so Flask's ``silent`` does not catch it: here it is refused like
any other JSON that does not parse, never a 500."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from bridge.errors import InvalidInput


def request_json() -> Any | None:
    """The request's JSON body; None when it has none or it does not parse."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


def form_json(text: str, field: str) -> Any:
    """A form field's JSON, refused as ``InvalidInput`` naming ``field`` when it does not parse."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{field}: not valid JSON ({error})") from None
    except RecursionError:
        raise InvalidInput(f"{field}: not valid JSON (nested too deeply)") from None
