"""IdP-initiated SSO: a response that answers no request of ours. It never becomes tokens: that
would let an attacker sign a victim's browser into the attacker's account (login CSRF). It is
verified and used up, and the browser goes to the client's login start URL to begin a normal
SP-initiated login, which the IdP's session completes without a password prompt."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from bridge.audit import Refusal
from bridge.errors import SamlRejected
from bridge.idps.settings import IdentityProvider
from bridge.replay import use_unsolicited
from bridge.saml import response as saml_response
from bridge.saml.subject import to_identity
from bridge.service_provider import service_provider

if TYPE_CHECKING:
    from bridge.services import Services

log = logging.getLogger("bridge.login")


class IdpInitiatedLogin:
    def __init__(self, services: Services) -> None:
        self.services = services

    def complete(self, idp: IdentityProvider, received: saml_response.ReceivedResponse,
                 relay_state: str | None, refusal: Refusal) -> str:
        """Return the login start URL of the client RelayState names."""
        allowed = idp.settings.idp_initiated_clients
        target = relay_state or allowed[0]
        if target not in allowed:
            # RelayState is only ever one of the configured client IDs, never a URL.
            raise SamlRejected("saml_relay_state_invalid",
                               "RelayState does not name a client this IdP may start logins for.",
                               log_detail={"relay_state": (relay_state or "")[:200]})
        refusal.client_id = target
        settings, clock = self.services.settings, self.services.clock
        client = settings.client(target)
        assert client is not None and client.login_start_uri  # checked at start-up
        verified = saml_response.verify(received, idp=idp,
                                        sp=service_provider(settings, idp.slug),
                                        expected_request_id=None, clock=clock)
        identity = to_identity(verified, idp)
        warn_if_sha1(idp, verified)
        use_unsolicited(self.services.db, verified, now=clock.now(), event="login_idp_initiated",
                        outcome="redirected", client_id=client.client_id,
                        subject=identity.subject)
        # OpenID Connect Core §4 (third-party initiated login): iss tells the client where to go.
        query = urlencode({"iss": settings.base_url, "idp": idp.slug})
        uri = client.login_start_uri
        return uri + ("&" if "?" in uri else "?") + query


def warn_if_sha1(idp: IdentityProvider, verified: saml_response.VerifiedAssertion) -> None:
    if verified.uses_sha1:
        log.warning("insecure: IdP %s signed with SHA-1, accepted under its exception until %s",
                    idp.slug, idp.settings.insecure_allow_sha1_until)
