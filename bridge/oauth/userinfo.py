"""OIDC Core §5.3 UserInfo: the claims of a live login, for one of its access tokens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bridge.claims import userinfo_claims
from bridge.errors import TokenError
from bridge.oauth.live_logins import idle, live_login_query
from bridge.store.models import RefreshFamily
from bridge.tokens import signing
from bridge.tokens.access import ACCESS_TOKEN_TYPE, login_of

if TYPE_CHECKING:
    from bridge.services import Services


class UserInfo:
    def __init__(self, services: Services) -> None:
        self.services = services

    def userinfo(self, access_token: str) -> dict[str, object]:
        settings = self.services.settings
        unverified = signing.peek_client_id(access_token)
        client = self.services.clients.client(unverified or "")
        if client is None:
            raise TokenError("invalid_token", "The access token is not valid.", code="token_invalid")
        claims = signing.verify(access_token, self.services.keys, issuer=settings.base_url,
                                audience=client.audience, typ=ACCESS_TOKEN_TYPE)
        if claims.get("client_id") != client.client_id:
            raise TokenError("invalid_token", "The access token is not valid.", code="token_invalid")
        query = live_login_query(self.services).where(RefreshFamily.subject == claims["sub"],
                                                      RefreshFamily.client_id == client.client_id)
        login = login_of(claims.get("jti"))
        if login is not None:
            # The token's own login, not any other live login of the same person.
            query = query.where(RefreshFamily.id == login)
        else:
            # Tokens issued before jti named the login: the person's latest live login.
            query = query.order_by(RefreshFamily.created_at.desc()).limit(1)
        with self.services.db.transaction() as session:
            family = session.scalars(query).first()
            if family is not None and idle(self.services, family):
                family = None
        if family is None:
            raise TokenError("invalid_token", "The login behind this token has ended.",
                             code="token_invalid")
        return userinfo_claims(json.loads(family.claims_json), str(claims.get("scope", "")))
