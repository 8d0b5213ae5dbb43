"""An IdP's settings as an admin edits them on its page: TOML, the format of
``idp_metadata/<slug>.toml`` and of the README, so a table copied from a file works as it is.
JSON, as the admin API takes it, is read too."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import tomli_w

from bridge.errors import InvalidInput


def settings_as_toml(settings: dict[str, Any]) -> str:
    """``settings`` (as stored) as a TOML document; nothing stored as null is written."""
    return tomli_w.dumps(_without_nulls(settings))


def settings_from_text(text: str) -> dict[str, Any]:
    """The settings an admin typed: a TOML document, or a JSON object."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as toml_error:
        if text.lstrip().startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as json_error:
                raise InvalidInput(f"settings: neither TOML ({toml_error}) nor a JSON object "
                                   f"({json_error})") from None
            if isinstance(parsed, dict):
                return parsed
        raise InvalidInput(f"settings: not valid TOML ({toml_error}); write them as in "
                           "idp_metadata/<slug>.toml") from None


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value
