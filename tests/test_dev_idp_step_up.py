"""The development IdP's login page, in process: a person can choose a second factor, a request
for MFA gets no weaker login, and a passive request is answered NoPassive. Its answers go through
the bridge's ACS like any IdP's."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.idp_app import create_idp_app
from bridge.dev.saml_idp import SECOND_FACTOR_CODE, DevIdp
from bridge.store.db import Database
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

WEB2 = {"client_id": "web2", "redirect_uris": ["https://web2.example.com/cb"],
        "audience": "https://api.example.com", "claims_version": 2, "public": True}


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, WEB2])


@pytest.fixture
def idp_page(dev_idp: DevIdp) -> FlaskClient:
    return create_idp_app(dev_idp).test_client()


def _at_idp(browser: Browser, idp_page: FlaskClient, **params: str) -> tuple[str, Any]:
    """Start a login at the bridge; return the IdP's page and the bridge's answer (which holds
    the state and PKCE verifier the scripted browser sent)."""
    response = browser.authorize(client_id="web2", redirect_uri=WEB2["redirect_uris"][0],
                                 scope="openid", **params)
    location = urlsplit(response.headers["Location"])
    page = idp_page.get(f"{location.path}?{location.query}")
    assert page.status_code == 200
    return page.get_data(as_text=True), response


def _claims(browser: Browser, query: dict[str, list[str]], started: Any) -> dict[str, Any]:
    assert query["state"] == [started.state]
    tokens = browser.exchange(query["code"][0], started.verifier, client_id="web2",
                              redirect_uri=WEB2["redirect_uris"][0]).get_json()
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, page
    return html.unescape(found.group(1))


def _to_bridge(browser: Browser, page: str) -> dict[str, list[str]]:
    response = browser.post_acs(_field(page, "SAMLResponse"))
    assert response.status_code == 302, response.get_data(as_text=True)
    return parse_qs(urlsplit(response.headers["Location"]).query)


def _sign_in(idp_page: FlaskClient, page: str, **form: str):  # type: ignore[no-untyped-def]
    return idp_page.post("/login", data={"ticket": _field(page, "ticket"), "username": "alice",
                                         "password": "alice", **form})


def test_a_second_factor_is_asserted_as_mfa(browser: Browser, idp_page: FlaskClient) -> None:
    page, started = _at_idp(browser, idp_page, acr_values="mfa")
    assert "id='mfa-asked'" in page
    assert _sign_in(idp_page, page).status_code == 401  # asked for MFA: no password-only login
    assert _sign_in(idp_page, page, second_factor="1", otp="000000").status_code == 401
    answer = _sign_in(idp_page, page, second_factor="1", otp=SECOND_FACTOR_CODE)
    assert answer.status_code == 200
    claims = _claims(browser, _to_bridge(browser, answer.get_data(as_text=True)), started)
    assert (claims["acr"], claims["amr"]) == ("mfa", ["mfa"])


def test_a_person_may_choose_the_second_factor_unasked(browser: Browser,
                                                       idp_page: FlaskClient) -> None:
    page, started = _at_idp(browser, idp_page)
    assert "mfa-asked" not in page
    answer = _sign_in(idp_page, page, second_factor="1", otp=SECOND_FACTOR_CODE)
    claims = _claims(browser, _to_bridge(browser, answer.get_data(as_text=True)), started)
    assert claims["acr"] == "mfa"


def test_a_password_login_is_asserted_as_pwd(browser: Browser, idp_page: FlaskClient) -> None:
    page, started = _at_idp(browser, idp_page)
    answer = _sign_in(idp_page, page)
    claims = _claims(browser, _to_bridge(browser, answer.get_data(as_text=True)), started)
    assert (claims["acr"], claims["amr"]) == ("pwd", ["pwd"])


def test_a_passive_request_is_answered_no_passive(browser: Browser,
                                                  idp_page: FlaskClient) -> None:
    page, started = _at_idp(browser, idp_page, prompt="none")
    assert "ticket" not in page  # no login form: it answers at once
    query = _to_bridge(browser, page)
    assert query["error"] == ["login_required"] and query["state"] == [started.state]
    assert browser.issued_nothing()
