"""An access token outlives nothing: once its login has ended (logout, /revoke, IdP logout,
`bridge revoke`, reuse detection, idle timeout), introspection says ``{"active": false}`` and
/userinfo refuses it, even while the same person has another live login of the same client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.revocation import Revocation
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.models import RefreshFamily
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings
from tests.helpers import Browser

# The API that demo's tokens are for (audience demo-api), registered to introspect them.
API = {**CONFIDENTIAL_CLIENT, "audience": "demo-api"}
API_AUTH = (API["client_id"], CONFIDENTIAL_SECRET)
IDLE_SECONDS = 300


class MovableClock:
    """The system's time, moved forward by ``offset``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    demo = {**DEMO_CLIENT, "refresh_idle_timeout_seconds": IDLE_SECONDS}
    return make_settings(database, idp_dir, tmp_path, clients=[demo, API])


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def bridge(settings: Settings, clock: MovableClock) -> Iterator[Services]:
    the_bridge = build_services(settings, clock)
    yield the_bridge
    the_bridge.db.dispose()


def _introspect(client: FlaskClient, token: str) -> dict:
    response = client.post("/introspect", data={"token": token}, auth=API_AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def _userinfo(client: FlaskClient, token: str) -> int:
    return client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code


def _session_index(browser: Browser, refresh_token: str) -> str:
    # What the IdP knows of the login: the SessionIndex it issued (read here from our side).
    from bridge.store.models import RefreshToken
    from bridge.tokens.secrets_util import secret_hash

    with browser.bridge.db.transaction() as session:
        family = session.query(RefreshFamily).join(RefreshToken).filter(
            RefreshToken.token_hash == secret_hash(refresh_token)).one()
        return str(family.session_index)


def _logout(browser: Browser, tokens: dict, **_: object) -> None:
    response = browser.client.post("/logout", data={"client_id": "demo",
                                                    "refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200


def _revoke(browser: Browser, tokens: dict, **_: object) -> None:
    response = browser.client.post("/revoke", data={"client_id": "demo",
                                                    "token": tokens["refresh_token"]})
    assert response.status_code == 200


def _idp_logout(browser: Browser, tokens: dict, dev_idp: DevIdp, **_: object) -> None:
    url = dev_idp.logout_request_url("https://bridge.example.com/saml/dev/slo",
                                     "https://bridge.example.com/saml/metadata", "a1b2c3d4-0001",
                                     [_session_index(browser, tokens["refresh_token"])])
    path, _, query = url.partition("?")
    response = browser.client.get("/saml/dev/slo?" + query)
    assert response.status_code == 302, response.get_data(as_text=True)


def _bridge_revoke(browser: Browser, tokens: dict, **_: object) -> None:
    # `bridge revoke --subject <sub>`: an offboarded person.
    sub = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
    assert Revocation(browser.bridge).revoke_all(subject=sub, actor="cli:test") == 1


def _reuse(browser: Browser, tokens: dict, clock: MovableClock, **_: object) -> None:
    # A stolen refresh token used after its rotation: the family is revoked.
    assert browser.refresh(tokens["refresh_token"]).status_code == 200
    clock.offset += 10  # past the reuse interval
    assert browser.refresh(tokens["refresh_token"]).status_code == 400


def _idle(browser: Browser, tokens: dict, clock: MovableClock, **_: object) -> None:
    # Not refreshed within the client's idle timeout; the access token itself is still valid.
    clock.offset += IDLE_SECONDS + 1


ENDINGS: list[tuple[Callable[..., None], str | None]] = [
    (_logout, "alice"), (_revoke, "alice"), (_idp_logout, "alice"), (_reuse, "alice"),
    # Every login of alice ends: the live one beside is bob's.
    (_bridge_revoke, "bob"),
    # Every login of the client idles alike (tokens are verified against the system's time, so
    # a login kept alive meanwhile cannot be shown with the moved clock).
    (_idle, None),
]


@pytest.mark.parametrize("end,other_user", ENDINGS, ids=[e.__name__[1:] for e, _ in ENDINGS])
def test_access_tokens_of_an_ended_login_are_inactive(
        browser: Browser, dev_idp: DevIdp, clock: MovableClock, end: Callable[..., None],
        other_user: str | None) -> None:
    ended = browser.tokens("alice")
    # Another login stays live: the same person in another tab, or another person.
    live = browser.tokens(other_user) if other_user else None
    assert _introspect(browser.client, ended["access_token"])["active"] is True
    end(browser, ended, dev_idp=dev_idp, clock=clock)
    # The signature is still good and the token not expired; the login behind it is over.
    assert _introspect(browser.client, ended["access_token"]) == {"active": False}
    assert _userinfo(browser.client, ended["access_token"]) == 401
    if live is not None:
        assert _introspect(browser.client, live["access_token"])["active"] is True
        assert _userinfo(browser.client, live["access_token"]) == 200


def test_refreshed_tokens_belong_to_the_same_login(browser: Browser) -> None:
    tokens = browser.tokens()
    refreshed = browser.refresh(tokens["refresh_token"]).get_json()
    assert _introspect(browser.client, tokens["access_token"])["active"] is True
    _logout(browser, refreshed)
    for token in (tokens["access_token"], refreshed["access_token"]):
        assert _introspect(browser.client, token) == {"active": False}


def test_access_tokens_expire_by_the_injected_clock(browser: Browser, clock: MovableClock) -> None:
    """Design note 7: every time check reads the bridge's clock, the JWT `exp` check included."""
    tokens = browser.tokens()
    refresh_token = tokens["refresh_token"]
    for _ in range(3):  # keep the login live (within its idle timeout) past the token's lifetime
        clock.offset += IDLE_SECONDS - 10
        refreshed = browser.refresh(refresh_token)
        assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
        refresh_token = refreshed.get_json()["refresh_token"]
    assert clock.offset > tokens["expires_in"]
    assert _introspect(browser.client, tokens["access_token"]) == {"active": False}
    assert _introspect(browser.client, refreshed.get_json()["access_token"])["active"] is True
