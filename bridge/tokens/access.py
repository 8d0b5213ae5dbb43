"""Access tokens (RFC 9068, ``typ: at+jwt``) and OpenID Connect ID tokens."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any, NamedTuple

from bridge.clock import Clock
from bridge.tokens.keys import ActiveKey
from bridge.tokens.signing import sign

ACCESS_TOKEN_TYPE = "at+jwt"
# A refresh family's ID (uuid4 hex, tokens/refresh.py): the login an access token belongs to.
_LOGIN = re.compile(r"^[0-9a-f]{32}\Z")
# A token of no login's jti: the kind of IdP it came through and the instant it was issued, in
# milliseconds (new_jti).
_ISSUED = re.compile(r"([aft])([0-9]{1,16})\.")
# The kinds: an IdP of the admin API, one declared in a file in idp_metadata/, or either (a
# token issued before its jti said which).
THROUGH_API, THROUGH_FILE, THROUGH_EITHER = "a", "f", "t"


def new_jti(login: str | None, issued_at: float, through: str = THROUGH_EITHER) -> str:
    """A unique token ID that names the login it was issued under: ``<family>.<random>``; for a
    token of no login (the SAML bearer grant, or exchanged from one), the kind of IdP it came
    through (``through``: ``a`` or ``f``) and the instant it was issued instead:
    ``a<milliseconds>.<random>``.

    The published claims schemas forbid new claims (additionalProperties: false), so the link to
    the login travels in ``jti``, whose content they leave open (16-64 characters). Introspection
    and /userinfo read it to answer "inactive" once the login has ended
    (docs/decisions/0013-introspection-and-ended-logins.md). A token of no login stands while its
    IdP vouches for it, judged against when the IdP was made and when a refusal of its person
    began (``oauth/live_logins.py``); ``iat`` is whole seconds, and those can fall in the same
    second as the token; an IdP vouches only for the tokens of its kind, so a file put under
    the slug of a deleted IdP of the admin API brings back nothing that IdP issued."""
    nonce = secrets.token_urlsafe(16)
    return f"{login}.{nonce}" if login else f"{through}{int(issued_at * 1000)}.{nonce}"


def login_of(jti: object) -> str | None:
    """The login (refresh family ID) named by a verified token's ``jti``, if it names one."""
    if not isinstance(jti, str):
        return None
    login, dot, _ = jti.partition(".")
    return login if dot and _LOGIN.match(login) else None


class IssueTime(NamedTuple):
    instant: float
    # False for a token issued before jti named the instant: ``instant`` is its whole-second iat.
    precise: bool
    # The kind of IdP it came through (new_jti): THROUGH_API, THROUGH_FILE or THROUGH_EITHER.
    through: str = THROUGH_EITHER


def issued_at(claims: dict[str, Any]) -> IssueTime | None:
    """When a verified token of no login was issued: to the millisecond when its ``jti`` says
    so, else its whole-second ``iat``; None when ``iat`` is no number."""
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        return None
    jti = claims.get("jti")
    found = _ISSUED.match(jti) if isinstance(jti, str) else None
    if found is not None:
        instant = int(found.group(2)) / 1000
        if int(instant) == int(iat):  # the same second, as the token was signed with
            return IssueTime(instant, precise=True, through=found.group(1))
    return IssueTime(float(iat), precise=False)


def issue_access_token(
    claims: dict[str, Any],
    *,
    issuer: str,
    audience: str,
    client_id: str,
    auth_time: int,
    scope: str,
    ttl: int,
    key: ActiveKey,
    clock: Clock,
    login: str | None = None,
    dpop_jkt: str | None = None,
    issued_at: float | None = None,
    through: str = THROUGH_EITHER,
) -> str:
    """An access token; with ``dpop_jkt`` bound to that DPoP key (RFC 9449 §6.1, ``cnf.jkt``).
    ``issued_at``: the instant it counts as issued, taken before the checks that allowed it,
    for a token of no login: a refusal or an IdP's deletion committed while those ran then
    counts as after it was issued, and ends it. ``through``: the kind of IdP a token of no
    login came through (new_jti)."""
    instant = clock.now() if issued_at is None else issued_at
    now = int(instant)
    # Registered claims come last: nothing derived from an IdP can ever override them.
    payload: dict[str, Any] = {
        **claims,
        "iss": issuer,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "jti": new_jti(login, instant, through),
        "client_id": client_id,
        "auth_time": auth_time,
    }
    if scope:
        payload["scope"] = scope
    if dpop_jkt is not None:
        payload["cnf"] = {"jkt": dpop_jkt}
    return sign(payload, key, typ=ACCESS_TOKEN_TYPE)


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: left half of the hash of the access token, base64url."""
    digest = hashlib.sha512 if alg == "EdDSA" else {
        "ES256": hashlib.sha256, "RS256": hashlib.sha256}[alg]
    value = digest(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(value[: len(value) // 2]).rstrip(b"=").decode("ascii")


def issue_id_token(
    claims: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    auth_time: int,
    nonce: str | None,
    access_token: str | None,
    ttl: int,
    key: ActiveKey,
    clock: Clock,
) -> str:
    """An OpenID Connect ID token: for the client itself (``aud`` = client_id), not for APIs."""
    now = int(clock.now())
    payload: dict[str, Any] = {
        **claims,
        "iss": issuer,
        "aud": client_id,
        "exp": now + ttl,
        "iat": now,
        "auth_time": auth_time,
    }
    if nonce is not None:
        payload["nonce"] = nonce
    if access_token is not None:
        payload["at_hash"] = at_hash(access_token, key.alg)
    return sign(payload, key, typ="JWT")
