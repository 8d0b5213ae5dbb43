"""RP-initiated logout: the client ends a login here, and may send the browser on to the IdP's
Single Logout with our LogoutRequest."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from bridge import audit
from bridge.config import ClientConfig
from bridge.errors import BridgeError, IdpUnknown
from bridge.logout.request_ids import logout_request_id
from bridge.saml import ns
from bridge.saml.bindings import OutgoingMessage
from bridge.saml.sp import logout_request
from bridge.service_provider import service_provider
from bridge.store.models import RefreshFamily
from bridge.tokens import refresh as refresh_tokens
from bridge.tokens.secrets_util import seal, unseal

if TYPE_CHECKING:
    from bridge.services import Services

# How long the link that posts our LogoutRequest (HTTP-POST binding) may be followed: the client
# sends the browser there right after /logout answers.
LOGOUT_TICKET_SECONDS = 300


class Logout:
    def __init__(self, services: Services) -> None:
        self.services = services

    def logout(self, client: ClientConfig, token: str, *, idp_logout: bool,
               dpop_jkt: str | None = None) -> str | None:
        """Revoke the login of ``token``; when asked, return the URL that continues to the IdP's
        Single Logout: our (signed) LogoutRequest on the HTTP-Redirect binding, or, for an IdP
        whose Single Logout takes HTTP-POST only, our page that posts it (``logout_form``). A
        login bound to a DPoP key ends only with a proof of that key (``dpop_jkt``)."""
        settings, secrets = self.services.settings, self.services.secrets
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            family_id = refresh_tokens.family_of(session, token) if token else None
            family = session.get(RefreshFamily, family_id) if family_id else None
            if family is None or family.client_id != client.client_id:
                return None  # nothing of this client's to end; logout is idempotent
            refresh_tokens.check_key(family.dpop_jkt, dpop_jkt)
            refresh_tokens.revoke_family(session, family.id, now=now, reason="logout")
            audit.record(session, at=now, event="logout", outcome="success",
                         client_id=client.client_id, subject=family.subject,
                         idp_slug=family.idp_slug)
            name_id, session_index, slug = family.name_id, family.session_index, family.idp_slug
        idp = self.services.idps.get(slug)
        if not idp_logout or idp is None or not name_id:
            return None
        endpoint = idp.logout_endpoint()
        if endpoint is None:
            return None
        if endpoint[0] == ns.BINDING_POST:
            # A client can only send the browser to a URL: the form is posted from our page, and
            # the link to it is sealed, so that it names no one but this login's person.
            ticket = seal(secrets.logout_ticket, {"idp": slug, "name_id": name_id,
                                                  "session_index": session_index,
                                                  "exp": int(now) + LOGOUT_TICKET_SECONDS})
            return f"{settings.base_url}/saml/{slug}/logout?" + urlencode({"ticket": ticket})
        message = logout_request(idp, service_provider(settings, slug), name_id=name_id,
                                 session_index=session_index, now=now,
                                 signing_key=self.services.sp_keys.signing_key,
                                 message_id=logout_request_id(secrets.logout_request_id, slug))
        return message.url if message is not None else None

    def logout_form(self, slug: str, ticket: str) -> OutgoingMessage:
        """Our LogoutRequest for the login a ``logout`` link was made for, on the HTTP-POST
        binding (built and signed now)."""
        secrets = self.services.secrets
        payload = unseal(secrets.logout_ticket, ticket)
        now = self.services.clock.now()
        expires = payload.get("exp") if payload else None
        if (payload is None or payload.get("idp") != slug or not isinstance(expires, int)
                or expires <= now or not isinstance(payload.get("name_id"), str)):
            raise BridgeError(code="logout_ticket_invalid",
                              public_detail="This sign-out link is not valid or has expired.")
        idp = self.services.idps.get(slug)
        if idp is None:
            raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
        index = payload.get("session_index")
        message = logout_request(idp, service_provider(self.services.settings, slug),
                                 name_id=str(payload["name_id"]),
                                 session_index=index if isinstance(index, str) else None,
                                 now=now, signing_key=self.services.sp_keys.signing_key,
                                 message_id=logout_request_id(secrets.logout_request_id, slug))
        if message is None:
            raise BridgeError(code="logout_ticket_invalid",
                              public_detail="This identity provider has no Single Logout service.")
        return message
