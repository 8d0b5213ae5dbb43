"""docs/errors.md lists every stable code the bridge can raise."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import bridge
from bridge.errors import BridgeError

ROOT = Path(__file__).resolve().parent.parent


def error_types() -> set[type[BridgeError]]:
    """Every error type of the bridge, wherever it is declared."""
    for module in pkgutil.walk_packages(bridge.__path__, "bridge."):
        # wsgi builds the app when imported; dev and migrations declare no errors
        if not module.name.startswith(("bridge.dev", "bridge.store.migrations", "bridge.wsgi")):
            importlib.import_module(module.name)
    found: set[type[BridgeError]] = set()
    todo = [BridgeError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def patterns() -> list[str]:
    raising = "|".join(sorted(t.__name__ for t in error_types()))
    return [
        rf'(?:{raising}|refuse|_invalid)\(\s*"([a-z0-9_]+)"',
        r'\bcode="([a-z0-9_]+)"',
        r'_CODES = \{(?s:.*?)\}',
    ]


def raised_codes() -> set[str]:
    codes = {t.default_code for t in error_types()}
    first, second, tables = patterns()
    for path in (ROOT / "bridge").rglob("*.py"):
        text = path.read_text()
        for pattern in (first, second):
            codes.update(re.findall(pattern, text))
        for table in re.findall(tables, text):
            codes.update(re.findall(r':\s*"([a-z0-9_]+)"', table))
    return codes


def test_every_raised_code_is_documented() -> None:
    documented = set(re.findall(r"`([a-z0-9_]+)`", (ROOT / "docs" / "errors.md").read_text()))
    codes = raised_codes()
    assert len(codes) > 40  # the scan itself works
    assert sorted(codes - documented) == []


def test_the_status_follows_the_type_of_error() -> None:
    """One table, resolved along each type's MRO, outside any request: the status cannot
    depend on the URL."""
    from bridge import errors
    from bridge.web.errors import status_of

    assert {status_of(t("x")) for t in (errors.ConfigError, errors.InvalidInput,
                                        errors.FetchRefused)} == {422}
    assert status_of(errors.Conflict("x")) == 409
    assert status_of(errors.Misconfigured("x")) == 503
    assert status_of(errors.IdpUnknown("idp_unknown")) == 404
    assert status_of(errors.TooLarge("request_too_large")) == 413
    assert status_of(errors.SamlRejected("saml_malformed")) == 400
    assert status_of(errors.TokenError("invalid_client")) == 401
    assert status_of(errors.TokenError("invalid_grant")) == 400
