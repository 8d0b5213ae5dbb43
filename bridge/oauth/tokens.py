"""What the token endpoint answers (``TokenSet``) and how a login's tokens are minted from its
stored claims: the access token cut to scope and budget, an ID token when openid was granted."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge import metrics
from bridge.claims import GroupBudget, id_token_claims, token_claims
from bridge.config import ClientConfig, Settings
from bridge.tokens.access import issue_access_token, issue_id_token
from bridge.tokens.keys import ActiveKey

if TYPE_CHECKING:
    from bridge.services import Services

ACCESS_TOKEN_URN = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str
    client: ClientConfig
    id_token: str | None = None
    # Set while the client's claims version is being retired: the last day it is promised.
    claims_sunset: dt.date | None = None
    issued_token_type: str | None = None
    # "DPoP" when the access token is bound to the key of the request's proof (RFC 9449 §5).
    token_type: str = "Bearer"

    def body(self, *, include_refresh: bool) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if include_refresh and self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.id_token:
            body["id_token"] = self.id_token
        if self.scope:
            body["scope"] = self.scope
        if self.issued_token_type is not None:
            body["issued_token_type"] = self.issued_token_type  # RFC 8693 §2.2.1
        if self.claims_sunset is not None:
            body["claims_version_deprecated"] = True
            body["claims_version_sunset"] = self.claims_sunset.isoformat()
        return body


def group_budget(settings: Settings) -> GroupBudget:
    return GroupBudget(settings.groups_max_count, settings.groups_max_bytes)


def mint(services: Services, client: ClientConfig, claims_json: str, auth_time: int, scope: str,
         key: ActiveKey, grant: str, refresh_token: str, login: str, *,
         nonce: str | None = None, with_id_token: bool = True,
         dpop_jkt: str | None = None) -> TokenSet:
    """The tokens of a login (a refresh family): the access token (cut to scope and budget), and
    an ID token when openid was granted and ``with_id_token`` (a refresh asks for none: decision
    0026)."""
    settings, clock = services.settings, services.clock
    full = json.loads(claims_json)
    ttl = settings.access_token_ttl_seconds
    access_token = issue_access_token(
        token_claims(full, scope, group_budget(settings)),
        issuer=settings.base_url,
        audience=client.audience,
        client_id=client.client_id,
        auth_time=auth_time,
        scope=scope,
        ttl=ttl,
        key=key,
        clock=clock,
        login=login,
        dpop_jkt=dpop_jkt,
    )
    id_token = None
    if with_id_token and "openid" in scope.split():
        id_token = issue_id_token(
            id_token_claims(full, scope), issuer=settings.base_url,
            client_id=client.client_id, auth_time=auth_time, nonce=nonce,
            access_token=access_token, ttl=ttl, key=key, clock=clock)
    metrics.token_issued(client.client_id, grant)
    return TokenSet(access_token, ttl, refresh_token, scope, client, id_token,
                    settings.claims_sunset.get(int(full["ver"])),
                    token_type="DPoP" if dpop_jkt else "Bearer")
