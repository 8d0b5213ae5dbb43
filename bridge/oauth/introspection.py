"""RFC 7662 token introspection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from bridge.config import ClientConfig
from bridge.errors import TokenError
from bridge.oauth.live_logins import access_token_live, idle
from bridge.store.models import RefreshFamily, RefreshToken
from bridge.tokens import signing
from bridge.tokens.access import ACCESS_TOKEN_TYPE
from bridge.tokens.refresh import FAMILY_PERSON_DEPROVISIONED
from bridge.tokens.secrets_util import secret_hash

if TYPE_CHECKING:
    from bridge.services import Services


class Introspection:
    def __init__(self, services: Services) -> None:
        self.services = services

    def introspect(self, caller: ClientConfig, token: str) -> dict[str, object]:
        """Is ``token`` active, and what is it? Only for confidential callers, and only about
        tokens issued to them or meant for their audience (docs/clients.md)."""
        inactive: dict[str, object] = {"active": False}
        answer: dict[str, object]
        now = self.services.clock.now()
        if token.count(".") == 2:
            try:
                # Any of our access tokens verifies here; who may see it is decided below.
                claims = signing.verify(token, self.services.keys,
                                        issuer=self.services.settings.base_url,
                                        audience=None, typ=ACCESS_TOKEN_TYPE)
            except TokenError:
                return inactive
            if caller.client_id != claims.get("client_id") and not self._sees_audience(
                    caller, claims["aud"]):
                return inactive
            # A valid signature is not enough: the login the token was issued under must still
            # be live (not logged out, revoked or expired), as /userinfo requires, and the
            # person of a token of no login not deprovisioned.
            if not access_token_live(self.services, claims):
                return inactive
            answer = {"active": True, "token_type": "Bearer", "client_id": claims["client_id"],
                      "sub": claims["sub"], "aud": claims["aud"], "iss": claims["iss"],
                      "exp": claims["exp"], "iat": claims["iat"], "jti": claims.get("jti"),
                      "scope": claims.get("scope", "")}
            if isinstance(claims.get("cnf"), dict):
                # RFC 9449 §6.2: the resource must then demand a proof of this key.
                answer.update(token_type="DPoP", cnf=claims["cnf"])
            return answer
        with self.services.db.transaction() as session:
            # A family of a deprovisioned person is ended, even one that escaped the revocation
            # (a login that completed while the deprovisioning ran: tokens/refresh.py).
            found = session.execute(
                select(RefreshToken, RefreshFamily).join(RefreshFamily)
                .where(RefreshToken.token_hash == secret_hash(token),
                       ~FAMILY_PERSON_DEPROVISIONED)).first()
        if found is None:
            return inactive
        row, family = found
        if (family.client_id != caller.client_id or row.used_at is not None
                or family.revoked_at is not None or family.expires_at <= now
                or idle(self.services, family)):
            return inactive
        # Only confidential clients introspect, and only their own refresh tokens, which are
        # never bound to a DPoP key (RFC 9449 §5): there is no cnf to tell here.
        return {"active": True, "token_type": "refresh_token", "client_id": family.client_id,
                "sub": family.subject, "exp": int(family.expires_at), "scope": family.scope,
                "iat": int(row.created_at)}

    def _sees_audience(self, caller: ClientConfig, audience: object) -> bool:
        """An API sees the tokens of the clients that call it: those whose audience is its own,
        as the settings file or an admin configured them. A client that registered itself chose
        its audience, so it sees only its own tokens."""
        return (caller.audience == audience
                and not self.services.clients.self_registered(caller.client_id))
