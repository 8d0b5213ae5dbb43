"""RFC 7591 dynamic client registration, behind an initial access token (the
``registration_token`` setting; off without it).

The client's metadata is translated into a ``[[clients]]`` table and registered like any managed
client (bridge.clients.admin): the same rules, the same audit event, a secret made here. The
client ID is made here too. RFC 7591 has no audience: ``audience`` may be sent as an extension,
and is the client ID otherwise. The audience is the client's own: one that another client
already has (or may exchange tokens for) is refused, or whoever holds the registration token
would get access tokens for another application's API. Registered clients are then managed by
admins like the others (RFC 7592 client management is not offered)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from bridge.errors import ConfigError, TokenError
from bridge.tokens.secrets_util import constant_time_equal

if TYPE_CHECKING:
    from bridge.clients.admin import ClientAdmin
    from bridge.services import Services

GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
# RFC 7591 §2: without token_endpoint_auth_method, client_secret_basic is meant.
AUTH_METHODS = {"none": True, "client_secret_basic": False, "client_secret_post": False}
ACTOR = "registration"
# More redirect URIs or scopes than any application needs: refused, not stored.
MAX_ITEMS = 50


def _refuse(error: str, description: str) -> TokenError:
    code = ("registration_redirect_uri_invalid" if error == "invalid_redirect_uri"
            else "registration_metadata_invalid")
    return TokenError(error, description, code=code)


def check_initial_access_token(services: Services, presented: str | None) -> None:
    expected = services.settings.registration_token
    if not presented or expected is None or not constant_time_equal(presented, expected):
        raise TokenError("invalid_token", "A valid initial access token is required.",
                         code="registration_token_invalid")


def client_table(metadata: Any, client_id: str) -> dict[str, Any]:
    """The ``[[clients]]`` table of RFC 7591 client metadata; the parts it cannot express
    refused as ``invalid_client_metadata``."""
    if not isinstance(metadata, dict):
        raise _refuse("invalid_client_metadata", "The body must be a JSON object.")
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    # Strings only before any set or dict lookup: a list in JSON is no key (a 500 before).
    if not isinstance(method, str) or method not in AUTH_METHODS:
        raise _refuse("invalid_client_metadata", "token_endpoint_auth_method must be one of "
                      + ", ".join(AUTH_METHODS) + ".")
    grants = metadata.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or not grants \
            or not all(isinstance(g, str) and g in GRANT_TYPES for g in grants):
        raise _refuse("invalid_client_metadata",
                      "grant_types may hold authorization_code and refresh_token only.")
    if metadata.get("response_types", ["code"]) != ["code"]:
        raise _refuse("invalid_client_metadata", "response_types must be [\"code\"].")
    if "redirect_uris" not in metadata:
        raise _refuse("invalid_redirect_uri", "redirect_uris is required.")
    uris = metadata["redirect_uris"]
    if isinstance(uris, list) and len(uris) > MAX_ITEMS:
        raise _refuse("invalid_redirect_uri", f"redirect_uris: at most {MAX_ITEMS}.")
    table: dict[str, Any] = {"client_id": client_id, "redirect_uris": metadata["redirect_uris"],
                             "audience": metadata.get("audience", client_id),
                             "public": AUTH_METHODS[method]}
    scope = metadata.get("scope")
    if scope is not None:
        if not isinstance(scope, str) or not scope.split():
            raise _refuse("invalid_client_metadata", "scope must be a space-separated string.")
        if len(scope.split()) > MAX_ITEMS:
            raise _refuse("invalid_client_metadata", f"scope: at most {MAX_ITEMS} scopes.")
        table["scopes"] = scope.split()
    return table


def register(admin: ClientAdmin, metadata: Any) -> dict[str, Any]:
    """Register the client; the RFC 7591 §3.2.1 answer (its secret in this answer only)."""
    client_id = "dyn-" + secrets.token_hex(8)
    table = client_table(metadata, client_id)
    audience = table["audience"]
    if isinstance(audience, str) and audience in admin.audiences_in_use():
        raise TokenError("invalid_client_metadata", "audience: another client has this audience; "
                         "leave it out (the client ID is used) or choose one no client uses",
                         code="registration_audience_in_use")
    try:
        detail, secret = admin.create_client(table, ACTOR)
    except ConfigError as error:
        kind = ("invalid_redirect_uri" if any("redirect_uris" in p for p in error.problems)
                else "invalid_client_metadata")
        raise _refuse(kind, "; ".join(error.problems)) from None
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    answer: dict[str, Any] = {
        "client_id": client_id, "client_id_issued_at": int(detail["created_at"]),
        "redirect_uris": detail["redirect_uris"], "token_endpoint_auth_method": method,
        # What the client may use, whatever it asked for: every client's code exchange gives a
        # refresh token (RFC 7591 §3.2.1: the answer holds what was registered).
        "grant_types": sorted(GRANT_TYPES),
        "response_types": ["code"], "audience": detail["audience"]}
    if "scopes" in table:
        answer["scope"] = " ".join(table["scopes"])
    if secret is not None:
        answer.update({"client_secret": secret, "client_secret_expires_at": 0})
    return answer
