"""OIDC Core §5.3 UserInfo: the claims of a live login, for one of its access tokens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bridge.claims import userinfo_claims
from bridge.errors import DpopError, TokenError
from bridge.oauth.live_logins import access_token_live, idle, live_login_query
from bridge.store.models import RefreshFamily
from bridge.tokens import signing
from bridge.tokens.access import ACCESS_TOKEN_TYPE, login_of

if TYPE_CHECKING:
    from bridge.oauth.dpop import DpopChecker
    from bridge.services import Services


class UserInfo:
    def __init__(self, services: Services, dpop: DpopChecker) -> None:
        self.services = services
        self.dpop = dpop

    def userinfo(self, access_token: str, *, dpop_proofs: list[str] | None = None,
                 method: str = "GET") -> dict[str, object]:
        """The claims for ``access_token``: a Bearer token (``dpop_proofs`` None), or a token
        sent with ``Authorization: DPoP`` and the request's proof headers (RFC 9449 §7)."""
        settings = self.services.settings
        unverified = signing.peek_client_id(access_token)
        client = self.services.clients.client(unverified or "")
        if client is None:
            raise TokenError("invalid_token", "The access token is not valid.", code="token_invalid")
        claims = signing.verify(access_token, self.services.keys, issuer=settings.base_url,
                                audience=client.audience, typ=ACCESS_TOKEN_TYPE)
        if claims.get("client_id") != client.client_id:
            raise TokenError("invalid_token", "The access token is not valid.", code="token_invalid")
        self._check_binding(claims, access_token, dpop_proofs, method)
        query = live_login_query(self.services).where(RefreshFamily.subject == claims["sub"],
                                                      RefreshFamily.client_id == client.client_id)
        login = login_of(claims.get("jti"))
        if login is not None:
            # The token's own login, not any other live login of the same person.
            query = query.where(RefreshFamily.id == login)
        else:
            # A token of no login (or one issued before jti named the login) stands only as
            # introspection would say it does; then the person's latest live login answers.
            if not access_token_live(self.services, claims):
                raise TokenError("invalid_token", "The login behind this token has ended.",
                                 code="token_invalid")
            query = query.order_by(RefreshFamily.created_at.desc()).limit(1)
        with self.services.db.transaction() as session:
            family = session.scalars(query).first()
            if family is not None and idle(self.services, family):
                family = None
        if family is None:
            raise TokenError("invalid_token", "The login behind this token has ended.",
                             code="token_invalid")
        return userinfo_claims(json.loads(family.claims_json), str(claims.get("scope", "")))

    def _check_binding(self, claims: dict[str, object], access_token: str,
                       dpop_proofs: list[str] | None, method: str) -> None:
        """RFC 9449 §7.1: a bound token (``cnf.jkt``) only with the DPoP scheme and a proof of
        its key made for this token (``ath``); a plain one only as a Bearer token."""
        cnf = claims.get("cnf")
        bound = cnf.get("jkt") if isinstance(cnf, dict) else None
        if dpop_proofs is None:
            if bound is not None:
                raise DpopError("invalid_token", "This access token is DPoP-bound: send it with "
                                "Authorization: DPoP and a proof.", code="dpop_token_as_bearer")
            return
        if bound is None:
            raise DpopError("invalid_token", "This access token is not DPoP-bound: send it as a "
                            "Bearer token.", code="dpop_token_as_bearer",
                            log_detail={"why": "a Bearer token sent with the DPoP scheme"})
        proof = self.dpop.check(dpop_proofs, method=method, path="/userinfo",
                                access_token=access_token)
        if proof.jkt != bound:
            raise DpopError("invalid_token", "The DPoP proof is not made with the access token's "
                            "key.", code="dpop_key_mismatch",
                            log_detail={"token_jkt": bound, "proof_jkt": proof.jkt})
