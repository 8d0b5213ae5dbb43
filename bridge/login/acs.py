"""The Assertion Consumer Service: a posted SAMLResponse -> a verified login -> its completion.

Before anything is issued, the response must answer an outstanding request of ours, made in this
browser, not used before (or, IdP-initiated, be allowed for the IdP); request and assertion are
used up once each, on every node (bridge/replay.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy import exc as sa_exc

from bridge.audit import Refusal, refusals_audited
from bridge.errors import BridgeError, IdpUnknown, SamlRejected
from bridge.login.completions import Completion, OAuthCodeCompletion
from bridge.login.idp_initiated import IdpInitiatedLogin, warn_if_sha1
from bridge.replay import consume
from bridge.saml import response as saml_response
from bridge.saml.subject import to_identity
from bridge.service_provider import service_provider
from bridge.store.models import AuthnRequestRecord
from bridge.tokens.secrets_util import constant_time_equal, secret_hash

if TYPE_CHECKING:
    from bridge.services import Services

_GET_REQUEST = select(*AuthnRequestRecord.__table__.columns).where(
    AuthnRequestRecord.id == bindparam("id"))


@dataclass
class _Progress:
    """How far a login got: a refused one that belongs to a completion is handed back to it."""

    completion: Completion | None = None
    request_id: str | None = None


class AssertionConsumer:
    def __init__(self, services: Services, oauth_code: OAuthCodeCompletion,
                 idp_initiated: IdpInitiatedLogin, completions: Mapping[str, Completion]) -> None:
        self.services = services
        self.oauth_code = oauth_code
        self.idp_initiated = idp_initiated
        # Logins that end in the bridge itself (admin sign-in, test logins), by pseudo client ID.
        self.completions = dict(completions)

    def complete_login(self, slug: str, posted_response: str | None, browser_token: str | None,
                       *, relay_state: str | None = None, error_id: str) -> str:
        """Consume a posted SAMLResponse; return where to send the browser: the client's
        redirect_uri with a code, or (IdP-initiated) the client's login start URL."""
        progress = _Progress()
        try:
            return self._consume(slug, posted_response, browser_token, relay_state,
                                 Refusal(idp_slug=slug, error_id=error_id), progress)
        except BridgeError as error:
            if progress.completion is not None and progress.request_id:
                destination = progress.completion.failed(progress.request_id, error)
                if destination is not None:
                    return destination
            raise

    @refusals_audited("login")
    def _consume(self, slug: str, posted: str | None, browser_token: str | None,
                 relay_state: str | None, refusal: Refusal, progress: _Progress) -> str:
        settings, clock = self.services.settings, self.services.clock
        idp = self.services.idps.get(slug)
        if idp is None:
            raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
        idp.require_current_metadata(clock.now())
        if not posted:
            raise SamlRejected("saml_malformed", "The request carries no SAMLResponse.")
        received = saml_response.receive(posted, idp=idp, clock=clock,
                                         max_bytes=settings.max_saml_response_bytes,
                                         decryption_keys=self.services.sp_keys.decryption_keys())
        now = clock.now()
        request_id = received.claimed_in_response_to
        if request_id is None:
            if self._has_outstanding_request(slug, browser_token, now):
                raise SamlRejected("saml_request_mismatch",
                                   "The response answers no request, but this browser is waiting "
                                   "for the answer to one.")
            if not idp.live:
                raise SamlRejected("saml_unsolicited",
                                   "This IdP is not offered to users yet (it is being tested).")
            if not idp.settings.allow_idp_initiated:
                raise SamlRejected("saml_unsolicited",
                                   "This IdP may not start logins (IdP-initiated SSO is disabled).")
            return self.idp_initiated.complete(idp, received, relay_state, refusal)
        with self.services.db.connection() as connection:
            record = connection.execute(_GET_REQUEST, {"id": request_id}).first()
        if record is None or record.idp_slug != slug or record.expires_at <= now:
            raise SamlRejected("saml_request_unknown",
                               "The response answers a login request we have no record of.",
                               log_detail={"in_response_to": request_id[:128],
                                           "expired": bool(record and record.expires_at <= now)})
        refusal.client_id = record.client_id
        if record.consumed_at is not None:
            raise SamlRejected("saml_replay", "This login response has already been used.")
        if not browser_token or not constant_time_equal(secret_hash(browser_token),
                                                        record.browser_hash):
            raise SamlRejected("saml_browser_mismatch",
                               "The login finished in a different browser than it started in.")
        completion = self.completions.get(record.client_id)
        client = self.oauth_code.client(record) if completion is None else None
        progress.completion, progress.request_id = completion, record.id
        verified = saml_response.verify(received, idp=idp, sp=service_provider(settings, slug),
                                        expected_request_id=record.id, clock=clock)
        identity = to_identity(verified, idp)
        warn_if_sha1(idp, verified)
        if client is not None:
            return self.oauth_code.complete(record, client, idp, verified, identity, now)
        assert completion is not None
        try:
            with self.services.db.connection() as connection:
                consume(connection, record.id, verified, now)
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This assertion has already been used.") from None
        return completion.complete(record, identity, idp)

    def _has_outstanding_request(self, slug: str, browser_token: str | None, now: float) -> bool:
        if not browser_token:
            return False
        with self.services.db.transaction() as session:
            found = session.scalar(select(AuthnRequestRecord.id).where(
                AuthnRequestRecord.browser_hash == secret_hash(browser_token),
                AuthnRequestRecord.idp_slug == slug,
                AuthnRequestRecord.consumed_at.is_(None),
                AuthnRequestRecord.expires_at > now,
            ).limit(1))
        return found is not None
