"""An IdP's settings as an admin edits them on its page: TOML, the format of
``idp_metadata/<slug>.toml`` and of the README, so a table copied from a file works as it is.
JSON, as the admin API takes it, is read too."""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from typing import Any

import tomli_w

from bridge.errors import InvalidInput


def settings_as_toml(settings: dict[str, Any]) -> str:
    """``settings`` (as stored) as a TOML document; nothing stored as null is written."""
    return tomli_w.dumps(_without_nulls(settings))


# Real settings nest a few levels (mapping.claims.email.transforms[0].value_map); the parsers
# recurse once per level, so a document nested thousands deep would exhaust the stack.
MAX_NESTING = 32
_TOO_DEEP = f"settings: nested deeper than {MAX_NESTING} levels"


def settings_from_text(text: str) -> dict[str, Any]:
    """The settings an admin typed: a TOML document, or a JSON object."""
    try:
        return check_nesting(tomllib.loads(text))
    except RecursionError:
        raise InvalidInput(_TOO_DEEP) from None
    except tomllib.TOMLDecodeError as toml_error:
        if text.lstrip().startswith("{"):
            parsed = json_settings(text, toml_error=toml_error)
            if isinstance(parsed, dict):
                return parsed
        raise InvalidInput(f"settings: not valid TOML ({toml_error}); write them as in "
                           "idp_metadata/<slug>.toml") from None


def json_settings(text: str, *, toml_error: Exception | None = None) -> Any:
    """Settings given as JSON (the admin API's form field, or the page's JSON): parsed, with
    their nesting bounded."""
    try:
        return check_nesting(json.loads(text))
    except RecursionError:
        raise InvalidInput(_TOO_DEEP) from None
    except json.JSONDecodeError as json_error:
        if toml_error is not None:
            raise InvalidInput(f"settings: neither TOML ({toml_error}) nor a JSON object "
                               f"({json_error})") from None
        raise InvalidInput(f"settings: not valid JSON ({json_error})") from None


def check_nesting(value: Any) -> Any:
    """``value``, unless its tables and lists nest deeper than ``MAX_NESTING`` (counted without
    recursion, so any depth can be judged)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                raise InvalidInput(_TOO_DEEP)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return value


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


# The settings most IdPs need, as the page's form gives them: empty (or the default) removes the
# setting, so the TOML stays what the admin wrote.
_DEFAULTS = {"clock_skew_seconds": "60", "sign_requests": "auto",
             "insecure_allow_sha1_until": ""}


def form_value(key: str, value: Any) -> str:
    """A stored common setting as the form shows it (and sends it back when left alone): a
    date in the one form a date input keeps (2027-06-30, whichever ISO form was stored)."""
    if value is None:
        return ""
    if key == "insecure_allow_sha1_until":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            return str(value)
    return str(value)


def with_common_settings(settings: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """``settings`` with the form's vendor preset, clock skew, request signing and SHA-1
    exception; a field the form did not send, or sent unchanged, and everything else, is kept
    as it is."""
    changed = json.loads(json.dumps(settings, default=str))  # a deep copy of plain data
    mapping = changed.get("mapping")
    preset = form.get("preset", "").strip()
    if "preset" in form and (not isinstance(mapping, dict)
                             or preset != (mapping.get("preset") or "")):
        mapping = dict(mapping) if isinstance(mapping, dict) else {}
        if preset:
            mapping["preset"] = preset
        else:
            mapping.pop("preset", None)
        if mapping:
            changed["mapping"] = mapping
        else:
            changed.pop("mapping", None)
    for key, default in _DEFAULTS.items():
        if key not in form:
            continue  # not sent: kept as it is
        value = form[key].strip()
        if key in changed and value in (str(changed[key]), form_value(key, changed[key])):
            continue  # unchanged: kept as written, even where it is the default
        if value in ("", default):
            changed.pop(key, None)
        elif key == "clock_skew_seconds":
            # ASCII digits only: str.isdigit() takes "²" and "١٢", which int() does not.
            if not re.fullmatch(r"[0-9]{1,9}", value):
                raise InvalidInput(f"clock_skew_seconds: a whole number of seconds, not {value!r}")
            changed[key] = int(value)
        else:
            changed[key] = value
    return changed
