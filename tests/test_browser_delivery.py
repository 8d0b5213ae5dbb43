"""Refresh tokens for browsers: cookie attributes, CSRF defences, CORS, logout."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from bridge.store.models import RefreshFamily
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

SPA = {"client_id": "spa", "redirect_uris": ["https://spa.example.com/"], "audience": "spa-api",
       "refresh_token_delivery": "cookie"}
ORIGIN = "https://spa.example.com"


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, SPA])


def _spa_login(browser: Browser) -> dict:
    code, login = browser.login(client_id="spa", redirect_uri=SPA["redirect_uris"][0])
    response = browser.client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "spa",
        "redirect_uri": SPA["redirect_uris"][0], "code_verifier": login.verifier,
    }, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-bridge-refresh=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie
    return response.get_json()


def _cookie_refresh(browser: Browser, **headers: str):  # type: ignore[no-untyped-def]
    return browser.client.post("/token", data={"grant_type": "refresh_token", "client_id": "spa"},
                               headers=headers)


def test_refresh_token_never_in_the_body_for_cookie_clients(browser: Browser) -> None:
    body = _spa_login(browser)
    assert "refresh_token" not in body
    refreshed = _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert "refresh_token" not in refreshed.get_json()
    assert refreshed.headers["Set-Cookie"].startswith("__Host-bridge-refresh=")


@pytest.mark.parametrize("headers,code", [
    ({"Origin": ORIGIN}, "csrf_header_missing"),
    ({"X-Bridge-Refresh": "1"}, "csrf_origin_invalid"),
    ({"X-Bridge-Refresh": "1", "Origin": "https://evil.example.net"}, "csrf_origin_invalid"),
    ({"X-Bridge-Refresh": "1", "Origin": "http://127.0.0.1:8002"}, "csrf_origin_invalid"),
])
def test_cookie_refresh_needs_the_header_and_a_registered_origin(
        browser: Browser, headers: dict[str, str], code: str) -> None:
    _spa_login(browser)
    response = _cookie_refresh(browser, **headers)
    assert response.status_code == 400
    assert browser.last_audit().code == code or response.get_json()["error"] == "invalid_request"
    # Refused before the token was touched: the real SPA still refreshes.
    assert _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN}).status_code == 200


def test_cors_answers_registered_origins_only_and_never_star(browser: Browser) -> None:
    preflight = browser.client.options("/token", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-bridge-refresh"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Bridge-Refresh" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Origin" in preflight.headers["Vary"]
    evil = browser.client.options("/token", headers={"Origin": "https://evil.example.net",
                                                     "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    jwks = browser.client.get("/.well-known/jwks.json", headers={"Origin": "https://any.example"})
    assert jwks.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in jwks.headers


def test_logout_revokes_and_clears_the_cookie(browser: Browser) -> None:
    _spa_login(browser)
    response = browser.client.post("/logout", data={"client_id": "spa"},
                                   headers={"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert response.status_code == 200
    assert response.get_json() == {"logged_out": True}
    assert "__Host-bridge-refresh=;" in response.headers["Set-Cookie"]
    with browser.bridge.db.transaction() as session:
        assert session.query(RefreshFamily).one().revoked_reason == "logout"
    assert _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN}).status_code == 400


def test_logout_continues_to_saml_single_logout_at_the_idp(browser: Browser,
                                                          dev_idp: DevIdp) -> None:
    tokens = browser.tokens()
    response = browser.client.post("/logout", data={
        "client_id": "demo", "refresh_token": tokens["refresh_token"], "idp_logout": "true"})
    assert response.status_code == 200
    url = response.get_json()["idp_logout_url"]
    assert url.startswith("https://idp.example.org/slo/redirect?SAMLRequest=")
    # The IdP (pysaml2) reads a LogoutRequest naming the person and the session.
    name_id, session_indexes = dev_idp.parse_logout(parse_qs(urlsplit(url).query)["SAMLRequest"][0])
    assert name_id == "a1b2c3d4-0001"
    assert len(session_indexes) == 1
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
    assert browser.last_audit().code == "refresh_token_revoked"
    without = browser.client.post("/logout", data={"client_id": "demo",
                                                   "refresh_token": browser.tokens()["refresh_token"]})
    assert without.get_json() == {"logged_out": True}
