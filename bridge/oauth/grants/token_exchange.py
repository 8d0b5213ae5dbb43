"""RFC 8693 token exchange: a service presents an access token meant for it and receives one for
another audience it is allowed to call, with the same or a narrower scope and never a longer life
(the gateway "token re-issuance" pattern)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge import audit, metrics
from bridge.audit import refusals_audited
from bridge.claims import token_claims
from bridge.config import ClientConfig
from bridge.errors import TokenError
from bridge.oauth.live_logins import access_token_live
from bridge.oauth.tokens import ACCESS_TOKEN_URN, TokenSet, group_budget
from bridge.tokens import signing
from bridge.tokens.access import (
    ACCESS_TOKEN_TYPE,
    THROUGH_EITHER,
    issue_access_token,
    login_of,
)
from bridge.tokens.access import issued_at as issue_time_of

if TYPE_CHECKING:
    from bridge.services import Services

# JWT and RFC 9068 claims that a re-issued token sets anew, never copies.
# ``cnf`` too: a re-issued token is bound to the exchanging request's own DPoP key, if any.
_REGISTERED = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope",
                         "auth_time", "cnf"})


class TokenExchangeGrant:
    grant_type = "urn:ietf:params:oauth:grant-type:token-exchange"

    def __init__(self, services: Services) -> None:
        self.services = services

    @refusals_audited("token_exchange", refusals=TokenError)
    def issue(self, client: ClientConfig, form: dict[str, str], *,
              dpop_jkt: str | None = None) -> TokenSet:
        settings, clock = self.services.settings, self.services.clock
        if client.public:
            raise TokenError("unauthorized_client", "Only confidential clients exchange tokens.",
                             code="exchange_not_allowed")
        if form.get("subject_token_type") != ACCESS_TOKEN_URN:
            raise TokenError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_URN}.")
        if form.get("requested_token_type") not in (None, ACCESS_TOKEN_URN):
            raise TokenError("invalid_request", "Only access tokens can be requested.")
        if form.get("actor_token"):
            raise TokenError("invalid_request", "Delegation (actor_token) is not supported.")
        audience = form.get("audience", "")
        if audience not in client.token_exchange_audiences:
            raise TokenError("invalid_target", "This client may not obtain tokens for that audience.",
                             code="exchange_audience_refused", log_detail={"audience": audience[:200]})
        # The presented token must have been meant for the exchanging service itself.
        subject = signing.verify(form.get("subject_token", ""), self.services.keys,
                                 issuer=settings.base_url, audience=client.audience,
                                 typ=ACCESS_TOKEN_TYPE)
        # RFC 8693 §2.2.2: a subject token whose login has ended (or, of no login, whose person
        # the IdP deprovisioned) is no longer valid; what it is exchanged for belongs to the
        # same login, and ends with it.
        login = login_of(subject.get("jti"))
        issued_at = clock.now()  # before the check, as the bearer grant does
        if not access_token_live(self.services, subject):
            raise TokenError("invalid_grant", "The login behind the subject token has ended.",
                             code="token_invalid", log_detail={"why": "login ended"})
        granted = str(subject.get("scope", "")).split()
        requested = form["scope"].split() if form.get("scope") is not None else granted
        if any(s not in granted for s in requested):
            raise TokenError("invalid_scope", "The requested scope exceeds the subject token's.")
        now = int(issued_at)
        ttl = min(settings.access_token_ttl_seconds, int(subject["exp"]) - now)
        if ttl <= 0:
            raise TokenError("invalid_grant", "The subject token has expired.", code="token_invalid")
        # The subject token's claims, cut again to the (possibly narrower) scope.
        claims = token_claims({k: v for k, v in subject.items() if k not in _REGISTERED},
                              " ".join(requested), group_budget(settings))
        access_token = issue_access_token(
            claims, issuer=settings.base_url, audience=audience, client_id=client.client_id,
            auth_time=int(subject["auth_time"]), scope=" ".join(requested), ttl=ttl,
            key=self.services.keys.signing_key(client.token_signing_alg), clock=clock,
            login=login, dpop_jkt=dpop_jkt, issued_at=issued_at, through=_through(subject))
        with self.services.db.transaction() as session:
            audit.record(session, at=clock.now(), event="token_exchange", outcome="success",
                         client_id=client.client_id, subject=str(subject["sub"]),
                         detail={"from": subject["aud"], "to": audience})
        metrics.token_issued(client.client_id, "token_exchange")
        return TokenSet(access_token, ttl, None, " ".join(requested), client,
                        issued_token_type=ACCESS_TOKEN_URN,
                        token_type="DPoP" if dpop_jkt else "Bearer")


def _through(subject: dict[str, Any]) -> str:
    """The kind of IdP a subject token of no login came through, for the token it is exchanged
    for: the IdP that vouched for the one vouches for the other."""
    issued = issue_time_of(subject)
    return issued.through if issued is not None else THROUGH_EITHER
