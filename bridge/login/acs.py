"""The Assertion Consumer Service: a posted SAMLResponse -> a verified login -> its completion.

Before anything is issued, the response must answer an outstanding request of ours, made in this
browser, not used before (or, IdP-initiated, be allowed for the IdP); request and assertion are
used up once each, on every node (bridge/replay.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import bindparam, select
from sqlalchemy import exc as sa_exc

from bridge.audit import Refusal, refusals_audited
from bridge.errors import BridgeError, Deprovisioned, IdpUnknown, LoginUnmet, SamlRejected
from bridge.idps.settings import IdentityProvider
from bridge.login.completions import Completion, OAuthCodeCompletion, use_login
from bridge.login.idp_initiated import IdpInitiatedLogin, warn_if_sha1
from bridge.login.step_up import check_login
from bridge.oauth.authn_requirement import AuthnRequirement
from bridge.oauth.deprovisioned import refuse_if_deprovisioned, refuse_if_person_deprovisioned
from bridge.saml import response as saml_response
from bridge.saml.failed_login import FailedAtIdp, verify_failure
from bridge.saml.subject import to_identity
from bridge.saml.verified import ImplausibleAuthnInstant
from bridge.service_provider import service_provider
from bridge.store import direct
from bridge.store.models import AuthnRequestRecord
from bridge.tokens.secrets_util import constant_time_equal, secret_hash

if TYPE_CHECKING:
    from bridge.config import ClientConfig
    from bridge.identity import Identity
    from bridge.services import Services

_GET_REQUEST = select(*AuthnRequestRecord.__table__.columns).where(
    AuthnRequestRecord.id == bindparam("id"))


@dataclass
class _Progress:
    """How far a login got: a refused one that belongs to a completion is handed back to it."""

    completion: Completion | None = None
    request_id: str | None = None
    # The OAuth request a login answers: where a login that is not what it asked for is reported.
    record: Any = None


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
            if isinstance(error, LoginUnmet) and progress.record is not None:
                # OIDC Core §3.1.2.6: the client asked for something this login is not; it
                # hears so on its redirect URI and may ask again (or differently).
                return _error_redirect(progress.record, error)
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
        try:
            received = saml_response.receive(
                posted, idp=idp, clock=clock, max_bytes=settings.max_saml_response_bytes,
                decryption_keys=self.services.sp_keys.decryption_keys())
        except FailedAtIdp as failure:
            self._failed_at_idp(failure, idp, browser_token, refusal, progress)
            raise
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
        record = self._outstanding(slug, request_id, browser_token, now, refusal)
        completion = self.completions.get(record.client_id)
        progress.completion, progress.request_id = completion, record.id
        # A login started while the IdP was offered (before it was deleted and restored into
        # testing) must not finish through it: only an admin's test login of this IdP may.
        if not idp.live and (completion is None or not completion.allows_idp_in_testing(record,
                                                                                       idp)):
            raise SamlRejected("idp_not_live",
                               "This IdP is not offered to users (it is being tested).")
        client = self.oauth_code.client(record) if completion is None else None
        if client is not None:
            # Only a LoginUnmet goes back to the client, and verify raises one only once the
            # response has passed every other check (an implausible AuthnInstant).
            progress.record = record
        try:
            verified = saml_response.verify(received, idp=idp,
                                            sp=service_provider(settings, slug),
                                            expected_request_id=record.id, clock=clock)
        except ImplausibleAuthnInstant as implausible:
            if implausible.refused is not None:
                refuse_if_person_deprovisioned(self.services.db, implausible.refused, idp)
            raise
        identity = to_identity(verified, idp)
        warn_if_sha1(idp, verified)
        # Whether the IdP deprovisioned the person is checked by the statement that completes
        # the login (completions.use_login): one round trip less.
        try:
            return self._complete(record, client, completion, idp, verified, identity, now)
        except Deprovisioned:
            raise
        except BridgeError:
            # A deprovisioned person is refused as such, whatever else the login lacks or did
            # wrong (the client's requirements, the claims mapping, a replay).
            with self.services.db.lookup() as connection:
                refuse_if_deprovisioned(connection, idp_slug=slug, subject=identity.subject)
            raise

    def _complete(self, record: Any, client: ClientConfig | None, completion: Completion | None,
                  idp: IdentityProvider, verified: saml_response.VerifiedAssertion,
                  identity: Identity, now: float) -> str:
        if client is not None:
            check_login(_requirement(record), idp, verified, requested_at=record.created_at,
                        now=self.services.clock.now())
            return self.oauth_code.complete(record, client, idp, verified, identity, now)
        assert completion is not None
        try:
            with self.services.db.single_statement() as connection:
                use_login(connection, record.id, verified, now, idp_slug=idp.slug,
                          subject=identity.subject)
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This assertion has already been used.") from None
        return completion.complete(record, identity, idp)

    def _outstanding(self, slug: str, request_id: str, browser_token: str | None, now: float,
                     refusal: Refusal) -> Any:
        """The outstanding request ``request_id`` of this IdP, made in this browser."""
        with self.services.db.lookup() as connection:
            record = direct.first(connection, _GET_REQUEST, {"id": request_id})
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
        return record

    def _failed_at_idp(self, failure: FailedAtIdp, idp: IdentityProvider, browser_token: str | None,
                       refusal: Refusal, progress: _Progress) -> None:
        """The IdP answered one of our requests with a failure and no assertion. When the client
        asked for no interaction and the IdP could not log in without it (NoPassive), raise what
        tells the client ``login_required``; otherwise the caller raises the failure as it is."""
        settings, now = self.services.settings, self.services.clock.now()
        # The login it claims to answer is looked up before its signature is checked, as for a
        # success: from a stranger with no login under way in this browser, a failure costs a
        # parse, not a signature check over whatever the size limit lets in. One that answers
        # no request is acted on in no way, so it is not checked at all.
        claimed = failure.root.get("InResponseTo")
        if not claimed:
            return
        record = self._outstanding(idp.slug, claimed, browser_token, now, refusal)
        failed = verify_failure(failure, idp=idp, acs_url=settings.acs_url(idp.slug),
                                allow_sha1=idp.settings.allows_sha1(now))
        failure.log_detail = {"status": failed.status, "sub_status": failed.sub_status}
        if record.client_id in self.completions or record.prompt != "none" or not failed.no_passive:
            return
        progress.record = record
        raise LoginUnmet("idp_no_passive",
                         "The identity provider cannot log the person in without interaction.",
                         oauth_error="login_required", log_detail=failure.log_detail)

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


def _requirement(record: Any) -> AuthnRequirement:
    return AuthnRequirement.from_stored(record.acr_values, record.max_age, record.prompt)


def _error_redirect(record: Any, error: LoginUnmet) -> str:
    query = {"error": error.oauth_error, "error_description": error.public_detail}
    if record.state is not None:
        query["state"] = record.state
    separator = "&" if "?" in record.redirect_uri else "?"
    return record.redirect_uri + separator + urlencode(query)
