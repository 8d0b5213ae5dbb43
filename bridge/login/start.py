"""/authorize -> AuthnRequest: choose the IdP, then send the browser there with a request we keep
a record of (``authn_requests``), bound to the browser by a cookie."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.config import ClientConfig
from bridge.errors import AuthorizeError, SamlRejected
from bridge.idps.settings import IdentityProvider, offered
from bridge.login.step_up import authn_options
from bridge.oauth.requests import AuthorizationRequest
from bridge.saml.bindings import OutgoingMessage
from bridge.saml.sp import authn_request
from bridge.service_provider import service_provider
from bridge.store.models import AuthnRequestRecord
from bridge.tokens.secrets_util import new_secret, secret_hash

if TYPE_CHECKING:
    from bridge.services import Services


@dataclass(frozen=True)
class LoginStart:
    # The AuthnRequest on its way to the IdP: a redirect, or a form the browser posts.
    message: OutgoingMessage
    browser_token: str
    request_id: str


@dataclass(frozen=True)
class IdpChoice:
    """Several IdPs and nothing to choose by: the user picks one."""

    idps: tuple[IdentityProvider, ...]


class LoginStarter:
    def __init__(self, services: Services, completions: Collection[str] = ()) -> None:
        self.services = services
        # The logins that end in the bridge itself (see completions.py), by pseudo client ID.
        self.completions = frozenset(completions)

    def choose_idp(self, request: AuthorizationRequest) -> IdentityProvider | IdpChoice:
        # An IdP still in testing is no choice of a user's (admins test it through completions).
        idps = offered(self.services.idps)
        if request.idp is not None:
            idp = idps.get(request.idp)
            if idp is None:
                raise AuthorizeError("idp_unknown", "Unknown idp.", redirectable=True,
                                     log_detail={"idp": request.idp[:64]})
            return self._current(idp)
        if len(idps) == 1:
            return self._current(next(iter(idps.values())))
        if request.login_hint and "@" in request.login_hint:
            domain = request.login_hint.rsplit("@", 1)[1].lower()
            matches = [i for i in idps.values() if domain in i.settings.email_domains]
            if len(matches) == 1:
                return self._current(matches[0])
        if not idps:
            raise AuthorizeError("idp_unknown", "No identity provider is configured.",
                                 redirectable=True, oauth_error="temporarily_unavailable")
        if request.requirement.passive:
            # OIDC Core §3.1.2.1: prompt=none shows no page, the IdP chooser included.
            raise AuthorizeError("idp_choice_required",
                                 "Choosing the identity provider takes interaction; name it "
                                 "with idp or login_hint.",
                                 redirectable=True, oauth_error="login_required")
        return IdpChoice(tuple(sorted(idps.values(), key=lambda i: i.display_name)))

    def _current(self, idp: IdentityProvider) -> IdentityProvider:
        try:
            idp.require_current_metadata(self.services.clock.now())
        except SamlRejected as error:
            raise AuthorizeError(error.code, error.public_detail, redirectable=True,
                                 oauth_error="temporarily_unavailable",
                                 log_detail=error.log_detail) from None
        return idp

    def start_login(self, request: AuthorizationRequest, idp: IdentityProvider,
                    browser_token: str | None) -> LoginStart:
        settings = self.services.settings
        now = self.services.clock.now()
        idp.require_current_metadata(now)
        if not browser_token or len(browser_token) > 64:
            browser_token = new_secret()
        options = authn_options(request.requirement, idp)
        request_id, message = authn_request(idp, service_provider(settings, idp.slug), now=now,
                                            signing_key=self.services.sp_keys.signing_key,
                                            options=options)
        with self.services.db.transaction() as session:
            session.add(AuthnRequestRecord(
                id=request_id,
                idp_slug=idp.slug,
                client_id=request.client.client_id,
                redirect_uri=request.redirect_uri,
                state=request.state,
                code_challenge=request.code_challenge,
                scope=request.scope,
                nonce=request.nonce,
                dpop_jkt=request.dpop_jkt,
                **request.requirement.stored(),
                browser_hash=secret_hash(browser_token),
                created_at=now,
                expires_at=now + settings.authn_request_ttl_seconds,
            ))
        return LoginStart(message=message, browser_token=browser_token, request_id=request_id)

    def start_completion_login(self, purpose: str, idp: IdentityProvider, return_to: str,
                               browser_token: str | None) -> LoginStart:
        """A login that ends in one of the bridge's own completions (admin sign-in, test login)
        instead of at an OAuth client: same request, binding and checks."""
        assert purpose in self.completions
        pseudo = ClientConfig(client_id=purpose, redirect_uris=(return_to,), audience=purpose)
        request = AuthorizationRequest(client=pseudo, redirect_uri=return_to, state=None,
                                       code_challenge=None, scope="", nonce=None, idp=idp.slug,
                                       login_hint=None)
        return self.start_login(request, idp, browser_token)
