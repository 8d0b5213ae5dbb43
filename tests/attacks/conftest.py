"""The attack harness: valid responses minted by pysaml2, mutated by the test, posted to the ACS,
and the one verdict every refusal must meet."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from werkzeug.test import TestResponse

from bridge.clock import Clock, FixedClock
from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.models import (
    AuthnRequestRecord,
    AuthorizationCode,
    RefreshFamily,
    RefreshToken,
)
from tests.attacks import xml_tools as x
from tests.conftest import DEMO_CLIENT, make_settings, test_sp_metadata
from tests.helpers import Browser, Login

LOGIN_START = "http://127.0.0.1:8002/start-login"


@pytest.fixture(scope="session")
def session_portal_idp(idp_key_dir: Path) -> DevIdp:
    return DevIdp(base_url="https://portal.example.net", state_dir=idp_key_dir,
                  sp_metadata=test_sp_metadata)


@pytest.fixture
def other_idp(session_other_idp: DevIdp, idp_dir: Path) -> DevIdp:
    """A second IdP with a key of its own: the confused deputy in cross-IdP attacks."""
    session_other_idp.write_metadata(idp_dir, slug="other")
    return session_other_idp


@pytest.fixture
def portal_idp(session_portal_idp: DevIdp, idp_dir: Path) -> DevIdp:
    """An IdP allowed to start logins (IdP-initiated), for the demo client only."""
    session_portal_idp.write_metadata(idp_dir, slug="portal")
    (idp_dir / "portal.toml").write_text(
        'allow_idp_initiated = true\nidp_initiated_clients = ["demo"]\n')
    return session_portal_idp


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             other_idp: DevIdp, portal_idp: DevIdp) -> Settings:
    demo = {**DEMO_CLIENT, "login_start_uri": LOGIN_START}
    return make_settings(database, idp_dir, tmp_path, clients=[demo])


@dataclass
class Attack:
    browser: Browser
    idp: DevIdp
    idp_keys: x.KeyPair

    def fresh(self, user: str = "alice") -> tuple[Login, etree._Element]:
        """A new login and the pysaml2 IdP's valid, signed answer to it, as a tree."""
        login = self.browser.start(idp="dev")
        return login, x.decode(self.browser.signed_response(login, user))

    def post(self, root: etree._Element | bytes | str, slug: str = "dev", **form: str) -> TestResponse:
        saml_response = root if isinstance(root, str) else x.encode(root)
        return self.browser.post_acs(saml_response, slug, **form)  # remembers it as a secret

    def resign(self, root: etree._Element, **kwargs: object) -> etree._Element:
        """Sign again with the IdP's own key: an IdP that really sent this content."""
        return x.resign(root, self.idp_keys, **kwargs)  # type: ignore[arg-type]

    def mutated(self, change: Callable[[etree._Element], object], *, resign: bool = True,
                user: str = "alice") -> tuple[Login, etree._Element]:
        login, root = self.fresh(user)
        change(root)
        if resign:
            self.resign(root)
        return login, root

    def accepted(self, response: TestResponse, login: Login) -> str:
        """The positive verdict: a redirect to the client with a code."""
        return self.browser.code_from(response, login)

    def issued(self) -> tuple[int, int, int, int]:
        """What exists that a login can create: codes, families, tokens, consumed requests."""
        browser = self.browser
        with browser.bridge.db.transaction() as session:
            consumed = session.query(AuthnRequestRecord).filter(
                AuthnRequestRecord.consumed_at.is_not(None)).count()
        return (browser.count(AuthorizationCode), browser.count(RefreshFamily),
                browser.count(RefreshToken), consumed)

    def refused(self, response: TestResponse, code: str,
                before: tuple[int, int, int, int] = (0, 0, 0, 0)) -> None:
        """The verdict for every attack: 4xx, the stable code, nothing issued (no code, no token,
        no session, no request consumed), and an audit event with the reason."""
        assert 400 <= response.status_code < 500, (response.status_code,
                                                   response.get_data(as_text=True))
        body = response.get_json()
        assert body["code"] == code, body
        assert "Location" not in response.headers
        assert self.issued() == before, "the refused response issued or consumed something"
        event = self.browser.last_audit()
        assert (event.event, event.outcome, event.code) == ("login", "refused", code)


@pytest.fixture
def attack(browser: Browser, dev_idp: DevIdp, idp_key_dir: Path) -> Attack:
    return Attack(browser, dev_idp, x.load_keypair(idp_key_dir))


def clone(element: etree._Element) -> etree._Element:
    return copy.deepcopy(element)


def restarted_with_skew(settings: Settings, idp_dir: Path, slug: str, skew: int,
                        clock: Clock) -> Services:
    """The operator raises an IdP's ``clock_skew_seconds`` and restarts the bridge (same
    database). Dispose of the returned bridge's database when done."""
    toml = idp_dir / f"{slug}.toml"
    toml.write_text(f"clock_skew_seconds = {skew}\n" + toml.read_text())
    return build_services(settings, clock)


def fixed_clock(bridge: Services) -> FixedClock:
    clock = FixedClock(bridge.clock.now())
    bridge.clock = clock
    bridge.keys.clock = clock
    return clock


__all__ = ["Attack", "USERS", "clone", "LOGIN_START", "fixed_clock", "restarted_with_skew"]
