"""An IdP's settings for deprovisioning: how a SCIM user is matched to a login's subject
(``scim_user_key``) and from whom Security Event Tokens are accepted (``security_events``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.config.problems import Problems

SCIM_USER_KEYS = ("userName", "externalId")
# Asymmetric signatures only: a SET signed with a shared secret or "none" is never accepted.
SET_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                            "ES384", "ES512", "EdDSA"})
DEFAULT_SET_ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class SecurityEventSettings:
    """The transmitter of this IdP's Security Event Tokens: its ``iss``, its keys (a JWKS URL,
    fetched like metadata, or keys written here) and the algorithms it may sign with. ``audience``
    is what its SETs must carry as ``aud``; none means the receiver's URL."""

    issuer: str
    jwks_url: str | None = None
    jwks: str | None = None  # a JWKS document, as JSON
    audience: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_SET_ALGORITHMS


def parse_scim_user_key(raw: dict[str, Any], problems: Problems) -> str:
    key = raw.get("scim_user_key", "userName")
    if key not in SCIM_USER_KEYS:
        problems.add(f"scim_user_key: one of {', '.join(SCIM_USER_KEYS)}")
        return "userName"
    return str(key)


def parse_security_events(raw: dict[str, Any], problems: Problems
                          ) -> SecurityEventSettings | None:
    value = raw.get("security_events")
    if value is None:
        return None
    before = len(problems)
    if not isinstance(value, dict):
        problems.add("security_events: a table with issuer and jwks_url or jwks")
        return None
    for key in sorted(set(value) - {"issuer", "jwks_url", "jwks", "audience", "algorithms"}):
        problems.add(f"security_events.{key}: unknown key")
    issuer, url, jwks = value.get("issuer"), value.get("jwks_url"), value.get("jwks")
    audience, algorithms = value.get("audience"), value.get("algorithms", DEFAULT_SET_ALGORITHMS)
    if not _text(issuer):
        problems.add("security_events.issuer: the transmitter's iss, a string")
    if url is not None and not (_text(url) and str(url).startswith("https://")):
        problems.add("security_events.jwks_url: an https URL")
    if isinstance(jwks, dict):  # a TOML table or a JSON object: kept as JSON
        jwks = json.dumps(jwks, sort_keys=True)
    if jwks is not None and not _jwks(jwks):
        problems.add("security_events.jwks: a JWKS document ({\"keys\": [...]}), as JSON or a table")
    if (url is None) == (jwks is None):
        problems.add("security_events: exactly one of jwks_url, jwks")
    if audience is not None and not _text(audience):
        problems.add("security_events.audience: a string")
    if (not isinstance(algorithms, list | tuple) or not algorithms
            or not set(algorithms) <= SET_ALGORITHMS):
        problems.add(f"security_events.algorithms: a list of {', '.join(sorted(SET_ALGORITHMS))}")
        algorithms = DEFAULT_SET_ALGORITHMS
    if len(problems) > before:
        return None
    return SecurityEventSettings(issuer=str(issuer), jwks_url=url, jwks=jwks, audience=audience,
                                 algorithms=tuple(algorithms))


def _text(value: object) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= 2048
            and not any(c < " " or c == "\x7f" for c in value))


def _jwks(value: object) -> bool:
    try:
        document = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return (isinstance(document, dict) and isinstance(document.get("keys"), list)
            and all(isinstance(k, dict) for k in document["keys"]))
