"""Refresh tokens for browsers: cookie attributes, CSRF defences, CORS, logout."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from flask import Flask

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from bridge.store.models import RefreshFamily
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

SPA = {"client_id": "spa", "redirect_uris": ["https://spa.example.com/"], "audience": "spa-api",
       "refresh_token_delivery": "cookie"}
ORIGIN = "https://spa.example.com"
# A second browser client on the same bridge (its own origin, its own API).
CONSOLE = {"client_id": "console", "redirect_uris": ["https://console.example.com/"],
           "audience": "console-api", "refresh_token_delivery": "cookie"}
CONSOLE_ORIGIN = "https://console.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, SPA, CONSOLE])


def _spa_login(browser: Browser, user: str = "alice", client: dict = SPA,
               origin: str = ORIGIN) -> dict:
    client_id, redirect = client["client_id"], client["redirect_uris"][0]
    code, login = browser.login(user, client_id=client_id, redirect_uri=redirect)
    response = browser.client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "redirect_uri": redirect, "code_verifier": login.verifier,
    }, headers={"Origin": origin})
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"__Host-bridge-refresh-{client_id}=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie
    return response.get_json()


def _cookie_refresh(browser: Browser, client_id: str = "spa", **headers: str):  # type: ignore[no-untyped-def]
    return browser.client.post("/token", data={"grant_type": "refresh_token",
                                               "client_id": client_id}, headers=headers)


def _subject(body: dict) -> str:
    return str(jwt.decode(body["access_token"], options={"verify_signature": False})["sub"])


def _families(browser: Browser) -> list[tuple[str, str | None]]:
    with browser.bridge.db.transaction() as session:
        return [(f.client_id, f.revoked_reason)
                for f in session.query(RefreshFamily).order_by(RefreshFamily.created_at)]


def test_refresh_token_never_in_the_body_for_cookie_clients(browser: Browser) -> None:
    body = _spa_login(browser)
    assert "refresh_token" not in body
    refreshed = _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert "refresh_token" not in refreshed.get_json()
    assert refreshed.headers["Set-Cookie"].startswith("__Host-bridge-refresh-spa=")


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
    assert "__Host-bridge-refresh-spa=;" in response.headers["Set-Cookie"]
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


# --- cross-site requests: what a form on another site can make the browser send ----------------

@pytest.mark.parametrize("path,form", [
    ("/logout", {"client_id": "spa", "refresh_token": ""}),  # empty: as if no field were sent
    ("/logout", {"client_id": "spa", "refresh_token": "forged"}),
    ("/revoke", {"client_id": "spa", "token": ""}),
    ("/revoke", {"client_id": "spa", "token": "forged"}),
])
@pytest.mark.parametrize("origin", [EVIL, "null"])
def test_a_cross_site_form_cannot_clear_the_refresh_cookie(
        browser: Browser, caplog: pytest.LogCaptureFixture, path: str, form: dict[str, str],
        origin: str) -> None:
    _spa_login(browser)
    # What an auto-submitting form on evil.example.net sends: its own Origin ("null" from a
    # sandboxed frame), no X-Bridge-Refresh header, whatever fields it likes.
    response = browser.client.post(path, data=form, headers={"Origin": origin})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert "csrf_origin_invalid" in caplog.text
    assert "Set-Cookie" not in response.headers  # the cookie is neither cleared nor replaced
    assert _families(browser) == [("spa", None)]  # the login is untouched
    refreshed = _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)


def test_an_empty_refresh_token_field_does_not_skip_the_cookie_checks(
        browser: Browser, caplog: pytest.LogCaptureFixture) -> None:
    # From the SPA's own origin but without the header: an empty field changes nothing.
    _spa_login(browser)
    response = browser.client.post("/logout", data={"client_id": "spa", "refresh_token": ""},
                                   headers={"Origin": ORIGIN})
    assert response.status_code == 400
    assert "csrf_header_missing" in caplog.text
    assert "Set-Cookie" not in response.headers
    assert _families(browser) == [("spa", None)]


def test_a_cross_site_form_cannot_plant_a_login_in_the_refresh_cookie(
        app: Flask, browser: Browser, dev_idp: DevIdp, caplog: pytest.LogCaptureFixture) -> None:
    alice = _spa_login(browser, "alice")
    # The attacker signs in to the SPA as bob in a browser of their own, stops at the redirect
    # with the code, and reads bob's refresh cookie there.
    attacker = Browser(app.test_client(), dev_idp, browser.bridge)
    code, login = attacker.login("bob", client_id="spa", redirect_uri=SPA["redirect_uris"][0])
    _spa_login(attacker, "bob")
    cookie = attacker.client.get_cookie("__Host-bridge-refresh-spa")
    assert cookie is not None
    # Then makes alice's browser post bob's code, or bob's refresh token, from evil.example.net:
    # were it accepted, alice's SPA would go on as bob.
    for form in ({"grant_type": "authorization_code", "code": code, "client_id": "spa",
                  "redirect_uri": SPA["redirect_uris"][0], "code_verifier": login.verifier},
                 {"grant_type": "refresh_token", "client_id": "spa",
                  "refresh_token": cookie.value}):
        response = browser.client.post("/token", data=form, headers={"Origin": EVIL})
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "Set-Cookie" not in response.headers
        assert "access_token" not in response.get_json()
    assert caplog.text.count("csrf_origin_invalid") == 2
    refreshed = _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert refreshed.status_code == 200
    assert _subject(refreshed.get_json()) == _subject(alice)  # still alice


# --- one cookie per client ---------------------------------------------------------------------

def test_each_browser_client_keeps_its_own_login(browser: Browser) -> None:
    alice_spa = _spa_login(browser, "alice")
    bob_console = _spa_login(browser, "bob", CONSOLE, CONSOLE_ORIGIN)  # same browser, 2nd SPA
    spa = _cookie_refresh(browser, "spa", **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert spa.status_code == 200, spa.get_data(as_text=True)
    assert _subject(spa.get_json()) == _subject(alice_spa)
    console = _cookie_refresh(browser, "console",
                              **{"X-Bridge-Refresh": "1", "Origin": CONSOLE_ORIGIN})
    assert console.status_code == 200, console.get_data(as_text=True)
    assert _subject(console.get_json()) == _subject(bob_console)
    # Signing out of one ends that login and clears that cookie only.
    out = browser.client.post("/logout", data={"client_id": "spa"},
                              headers={"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert out.headers["Set-Cookie"].startswith("__Host-bridge-refresh-spa=;")
    assert _families(browser) == [("spa", "logout"), ("console", None)]
    assert _cookie_refresh(browser, "console", **{"X-Bridge-Refresh": "1",
                                                  "Origin": CONSOLE_ORIGIN}).status_code == 200


def test_a_login_in_the_former_shared_cookie_still_refreshes(browser: Browser) -> None:
    # A browser that signed in before each client had its own cookie holds the shared name.
    _spa_login(browser)
    value = browser.client.get_cookie("__Host-bridge-refresh-spa").value  # type: ignore[union-attr]
    browser.client.delete_cookie("__Host-bridge-refresh-spa")
    browser.client.set_cookie("__Host-bridge-refresh", value)
    refreshed = _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    cookies = refreshed.headers.getlist("Set-Cookie")
    assert any(c.startswith("__Host-bridge-refresh-spa=") and "Max-Age=0" not in c
               for c in cookies)
    assert any(c.startswith("__Host-bridge-refresh=;") for c in cookies)  # retired
    assert browser.client.get_cookie("__Host-bridge-refresh") is None


def test_another_clients_sign_out_leaves_a_shared_cookie_login_alone(browser: Browser) -> None:
    # spa's login sits in the former shared cookie; console signs out in the same browser.
    _spa_login(browser)
    value = browser.client.get_cookie("__Host-bridge-refresh-spa").value  # type: ignore[union-attr]
    browser.client.delete_cookie("__Host-bridge-refresh-spa")
    browser.client.set_cookie("__Host-bridge-refresh", value)
    out = browser.client.post("/logout", data={"client_id": "console"},
                              headers={"X-Bridge-Refresh": "1", "Origin": CONSOLE_ORIGIN})
    assert out.status_code == 200, out.get_data(as_text=True)
    assert not any(c.startswith("__Host-bridge-refresh=;") for c in out.headers.getlist("Set-Cookie"))
    assert browser.client.get_cookie("__Host-bridge-refresh") is not None
    assert _families(browser) == [("spa", None)]
    refreshed = _cookie_refresh(browser, **{"X-Bridge-Refresh": "1", "Origin": ORIGIN})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
