"""The token endpoint (RFC 6749 §3.2): one dispatcher over the grants, keyed by grant_type."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bridge.config import ClientConfig
from bridge.errors import TokenError
from bridge.oauth.tokens import TokenSet


class Grant(Protocol):
    grant_type: str

    def issue(self, client: ClientConfig, form: dict[str, str], *,
              dpop_jkt: str | None = None) -> TokenSet:
        """The tokens this grant gives the authenticated ``client`` for the request ``form``;
        ``dpop_jkt`` is the key of the request's verified DPoP proof, to bind them to."""
        ...


class TokenEndpoint:
    def __init__(self, grants: Iterable[Grant]) -> None:
        self.grants = {grant.grant_type: grant for grant in grants}

    def issue(self, client: ClientConfig, form: dict[str, str], *,
              dpop_jkt: str | None = None) -> TokenSet:
        grant_type = form.get("grant_type")
        grant = self.grants.get(grant_type or "")
        if grant is not None:
            return grant.issue(client, form, dpop_jkt=dpop_jkt)
        if not grant_type:
            raise TokenError("invalid_request", "grant_type is required.")
        raise TokenError("unsupported_grant_type",
                         "Supported: authorization_code, refresh_token, token-exchange, "
                         "saml2-bearer.")
