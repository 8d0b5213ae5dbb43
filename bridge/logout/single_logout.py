"""SAML Single Logout (HTTP-Redirect binding): the IdP's LogoutRequest ends every login of its
SAML session here; its LogoutResponse answers the LogoutRequest we sent (rp_initiated.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc

from bridge import audit
from bridge.audit import refusals_audited
from bridge.errors import IdpUnknown, SamlRejected
from bridge.idps.settings import IdentityProvider
from bridge.logout.request_ids import is_our_logout_request
from bridge.oauth.revocation import end_logins
from bridge.replay import remember_message
from bridge.saml import ns
from bridge.saml.bindings import OutgoingMessage
from bridge.saml.logout import LogoutRequest, verify_logout_request, verify_logout_response
from bridge.saml.sp import logout_response
from bridge.service_provider import service_provider
from bridge.store.models import AuthorizationCode, RefreshFamily

if TYPE_CHECKING:
    from bridge.services import Services


class SingleLogout:
    def __init__(self, services: Services) -> None:
        self.services = services

    def idp_logout(self, slug: str, query_string: str, *, error_id: str
                   ) -> OutgoingMessage | None:
        """A LogoutRequest from the IdP: revoke every login of that SAML session; return our
        LogoutResponse to the IdP (None when it has no Single Logout service to send it to)."""
        idp, request = self._verified_request(slug, query_string, error_id=error_id)
        self._end_sessions(idp, request, slug=slug, error_id=error_id)
        return logout_response(idp, service_provider(self.services.settings, slug),
                               in_response_to=request.id, now=self.services.clock.now(),
                               signing_key=self.services.sp_keys.signing_key)

    @refusals_audited("idp_logout")
    def _verified_request(self, slug: str, query_string: str, *, error_id: str
                          ) -> tuple[IdentityProvider, LogoutRequest]:
        idp = self.services.idps.get(slug)
        if idp is None:
            raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
        idp.require_current_metadata(self.services.clock.now())
        return idp, verify_logout_request(query_string, idp=idp,
                                          slo_url=self.services.settings.slo_url(slug),
                                          clock=self.services.clock)

    @refusals_audited("idp_logout", refusals=SamlRejected)
    def _end_sessions(self, idp: IdentityProvider, request: LogoutRequest, *, slug: str,
                      error_id: str) -> None:
        now = self.services.clock.now()
        try:
            with self.services.db.transaction() as session:
                # Once only, on every node: the request enters the replay cache first, so a
                # second use fails here (IntegrityError) and ends nothing. The assertion cache is
                # the right store: SAML Core §1.3.4 makes an issuer's IDs unique across all its
                # messages, so an IdP's LogoutRequest ID never equals one of its assertion IDs.
                remember_message(session, idp_entity_id=idp.metadata.entity_id,
                                 message_id=request.id, expires_at=request.replay_expires_at)
                which = (RefreshFamily.session_index.in_(request.session_indexes)
                         if request.session_indexes else RefreshFamily.name_id == request.name_id)
                ended = end_logins(
                    session, families=[RefreshFamily.idp_slug == slug, which],
                    codes=[AuthorizationCode.idp_slug == slug,
                           AuthorizationCode.session_index.in_(request.session_indexes)
                           if request.session_indexes
                           else AuthorizationCode.name_id == request.name_id],
                    now=now, reason="idp_logout")
                audit.record(session, at=now, event="idp_logout", outcome="success",
                             idp_slug=slug, detail={"families": ended,
                                                    "session_indexes": len(request.session_indexes)})
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This logout request has already been used.",
                               log_detail={"request_id": request.id}) from None

    @refusals_audited("logout_response")
    def logout_response_received(self, slug: str, query_string: str, *, error_id: str) -> bool:
        """The IdP's LogoutResponse to our LogoutRequest: verified and audited; True when the IdP
        says its session ended too (the login here ended when our request was made)."""
        clock = self.services.clock
        idp = self.services.idps.get(slug)
        if idp is None:
            raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
        idp.require_current_metadata(clock.now())
        response = verify_logout_response(query_string, idp=idp,
                                          slo_url=self.services.settings.slo_url(slug),
                                          clock=clock)
        if not is_our_logout_request(self.services.secrets.logout_request_id, slug,
                                     response.in_response_to):
            raise SamlRejected("saml_request_unknown",
                               "The logout response answers no logout request of ours.",
                               log_detail={"in_response_to": (response.in_response_to or "")[:128]})
        try:
            # Once only, on every node, as the IdP's LogoutRequests (idp_logout).
            with self.services.db.transaction() as session:
                remember_message(session, idp_entity_id=idp.metadata.entity_id,
                                 message_id=response.id, expires_at=response.replay_expires_at)
                audit.record(session, at=clock.now(), event="logout_response",
                             outcome="success", idp_slug=slug,
                             detail={"status": response.status[:200]})
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This logout response has already been used.",
                               log_detail={"response_id": response.id[:128]}) from None
        return response.status == ns.STATUS_SUCCESS
