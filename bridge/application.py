"""The use cases, built once from ``Services``: what the web app and the CLI call.

Every login completion is registered here, at construction: the OAuth code, IdP-initiated SSO,
admin sign-in and the admin's test login. Nothing is added afterwards."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.admin.access import AdminAccess
from bridge.admin.logins import ADMIN_SIGN_IN, TEST_LOGIN, AdminSignIn, TestLoginCapture
from bridge.admin.services import Administration
from bridge.clients.admin import ClientAdmin
from bridge.idps.fetch import FetchPolicy
from bridge.idps.lifecycle import IdpAdmin
from bridge.login.acs import AssertionConsumer
from bridge.login.completions import OAuthCodeCompletion
from bridge.login.idp_initiated import IdpInitiatedLogin
from bridge.login.start import LoginStarter
from bridge.logout.rp_initiated import Logout
from bridge.logout.single_logout import SingleLogout
from bridge.oauth.dpop import DpopChecker
from bridge.oauth.grants.authorization_code import AuthorizationCodeGrant
from bridge.oauth.grants.refresh_token import RefreshTokenGrant
from bridge.oauth.grants.saml_bearer import SamlBearerGrant
from bridge.oauth.grants.token_exchange import TokenExchangeGrant
from bridge.oauth.introspection import Introspection
from bridge.oauth.revocation import Revocation
from bridge.oauth.token_endpoint import TokenEndpoint
from bridge.oauth.userinfo import UserInfo
from bridge.provisioning.security_events import SecurityEvents
from bridge.provisioning.tokens import ProvisioningTokens
from bridge.services import Services

if TYPE_CHECKING:
    from bridge.provisioning.scim_users import ScimUsers


class ScimUsersOnFirstUse:
    """``ScimUsers``, built (and scim2-models imported) when first asked for: about 14 MB per
    worker that a node serving no SCIM client does without (bridge/web/scim.py)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._built: ScimUsers | None = None

    def __call__(self) -> ScimUsers:
        if self._built is None:
            with self._lock:
                if self._built is None:
                    from bridge.provisioning.scim_users import ScimUsers

                    self._built = ScimUsers(self._services)
        return self._built


@dataclass(frozen=True)
class Application:
    login: LoginStarter
    acs: AssertionConsumer
    tokens: TokenEndpoint
    revocation: Revocation
    introspection: Introspection
    userinfo: UserInfo
    dpop: DpopChecker
    logout: Logout
    single_logout: SingleLogout
    admin: Administration
    scim_tokens: ProvisioningTokens
    scim_users: ScimUsersOnFirstUse
    security_events: SecurityEvents


def build_application(services: Services, *,
                      fetch_policy: FetchPolicy | None = None) -> Application:
    login = LoginStarter(services, completions=(ADMIN_SIGN_IN, TEST_LOGIN))
    access = AdminAccess(services.db, services.clock, services.idps)
    admin = Administration(
        access=access,
        idps=IdpAdmin(services, fetch_policy),
        clients=ClientAdmin(services),
        sign_in=AdminSignIn(services.settings, access),
        test_logins=TestLoginCapture(services, login),
    )
    acs = AssertionConsumer(services, OAuthCodeCompletion(services), IdpInitiatedLogin(services),
                            {ADMIN_SIGN_IN: admin.sign_in, TEST_LOGIN: admin.test_logins})
    dpop = DpopChecker(services)
    tokens = TokenEndpoint([AuthorizationCodeGrant(services), RefreshTokenGrant(services),
                            TokenExchangeGrant(services), SamlBearerGrant(services)])
    return Application(login=login, acs=acs, tokens=tokens, revocation=Revocation(services),
                       introspection=Introspection(services),
                       userinfo=UserInfo(services, dpop), dpop=dpop,
                       logout=Logout(services), single_logout=SingleLogout(services),
                       admin=admin, scim_tokens=ProvisioningTokens(services),
                       scim_users=ScimUsersOnFirstUse(services),
                       security_events=SecurityEvents(services, fetch_policy))
