"""What a verified login becomes. For an OAuth client: an authorization code on its redirect URI
(``OAuthCodeCompletion``). For a login that ends in the bridge itself (admin sign-in, test
login): whatever its ``Completion`` decides, registered under a pseudo client ID when the
application is built."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from sqlalchemy import exc as sa_exc

from bridge import audit, metrics
from bridge.claims import build_claims
from bridge.config import ClientConfig
from bridge.errors import BridgeError, SamlRejected
from bridge.identity import Identity
from bridge.idps.settings import IdentityProvider
from bridge.oauth.deprovisioned import refuse_deprovisioned, unless_deprovisioned
from bridge.replay import Rows, consume
from bridge.saml import response as saml_response
from bridge.store import direct
from bridge.store.models import AuditEvent, AuthorizationCode
from bridge.tokens.secrets_util import new_secret, secret_hash

if TYPE_CHECKING:
    from bridge.services import Services


def use_login(connection: direct.Runner, request_id: str,
              verified: saml_response.VerifiedAssertion, now: float, *, idp_slug: str,
              subject: str, also: Rows = ()) -> None:
    """Use the login's request and assertion, once each, with the rows ``also``, for a person
    the IdP has not deprovisioned (``Deprovisioned`` otherwise, with nothing written): one
    statement on PostgreSQL. One that began before a deprovisioning committed cannot see it;
    its code is then refused at the exchange (``oauth/codes.py``)."""
    reason = consume(connection, request_id, verified, now,
                     unless=unless_deprovisioned(idp_slug, subject), also=also)
    if reason is not None:
        refuse_deprovisioned(idp_slug, reason)


class Completion(Protocol):
    """A login that ends in the bridge itself; its request and assertion are used up before
    ``complete`` is called."""

    def complete(self, record: Any, identity: Identity, idp: IdentityProvider) -> str:
        """Handle a verified login; return where the browser goes."""
        ...

    def failed(self, request_id: str, error: BridgeError) -> str | None:
        """Handle a refused login; return where the browser goes, or None to show the error."""
        ...

    def allows_idp_in_testing(self, record: Any, idp: IdentityProvider) -> bool:
        """Whether this login may complete through an IdP that is not offered to users."""
        ...


class OAuthCodeCompletion:
    """An authorization code for the client that started the login, stored in the transaction
    that uses up the request and the assertion."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def client(self, record: Any) -> ClientConfig:
        client = self.services.clients.client(record.client_id)
        if client is None:
            raise SamlRejected("client_unknown", "The client of this login is no longer registered.")
        return client

    def complete(self, record: Any, client: ClientConfig, idp: IdentityProvider,
                 verified: saml_response.VerifiedAssertion, identity: Identity,
                 now: float) -> str:
        """Return the client's redirect URI with a new code (and the request's state)."""
        claims = build_claims(client.claims_version, identity, idp.settings.mapping,
                              idp.settings.authn_contexts)
        code = new_secret()
        code_row = {
            "code_hash": secret_hash(code),
            "client_id": client.client_id,
            "redirect_uri": record.redirect_uri,
            "code_challenge": record.code_challenge,
            "scope": record.scope,
            "nonce": record.nonce,
            "dpop_jkt": record.dpop_jkt,
            "subject": identity.subject,
            "idp_slug": idp.slug,
            "claims_json": json.dumps(claims, separators=(",", ":")),
            "auth_time": identity.auth_time,
            "session_index": identity.session_index,
            "session_not_on_or_after": identity.session_not_on_or_after,
            "name_id": identity.name_id,
            "created_at": now,
            "expires_at": now + self.services.settings.authorization_code_ttl_seconds,
        }
        success = audit.event_row(at=now, event="login", outcome="success", idp_slug=idp.slug,
                                  client_id=client.client_id, subject=identity.subject,
                                  detail={"sha1": verified.uses_sha1} if verified.uses_sha1
                                  else None)
        try:
            # One statement on PostgreSQL: the person not deprovisioned, the request and
            # assertion used, the code stored and the login audited, or nothing.
            with self.services.db.single_statement() as connection:
                use_login(connection, record.id, verified, now, idp_slug=idp.slug,
                          subject=identity.subject,
                          also=((AuthorizationCode, code_row), (AuditEvent, success)))
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This assertion has already been used.") from None
        metrics.observe_event("login", "success", None, idp.slug, client.client_id)
        query = {"code": code}
        if record.state is not None:
            query["state"] = record.state
        separator = "&" if "?" in record.redirect_uri else "?"
        return record.redirect_uri + separator + urlencode(query)
