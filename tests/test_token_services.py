"""Introspection (RFC 7662), token exchange (RFC 8693) and revoking everything of a subject or
an IdP."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from bridge.audit import audit_events
from bridge.claims.schemas import validate_payload
from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.revocation import Revocation
from bridge.services import Services
from bridge.store.db import Database
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

GATEWAY = {"client_id": "gateway", "redirect_uris": ["https://gw.example.com/cb"],
           "audience": "gateway-api", "public": False, "claims_version": 2,
           "token_exchange_audiences": ["orders-api"]}
ORDERS = {"client_id": "orders", "redirect_uris": ["https://orders.example.com/cb"],
          "audience": "orders-api", "public": False}
SECRETS = {"BRIDGE_CLIENT_GATEWAY_SECRET": "7cR2xQ9mVb4Lw8ZsK1pN6tYh3Jd0FgA5uE7oWiXc2Bk",
           "BRIDGE_CLIENT_ORDERS_SECRET": "Tz5Hq8Ln2Vc7Rw0Ks4Mp9Xb1Jf6Gd3Ya8Ue5Ni2Oo7Q"}
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    from bridge.config import sources

    original = sources.read_secret

    def read_secret(env, name, problems):  # type: ignore[no-untyped-def]
        return SECRETS.get(name) or original(env, name, problems)

    monkeypatch.setattr(sources, "read_secret", read_secret)
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, GATEWAY, ORDERS])


def _gateway_token(browser: Browser, scope: str = "openid email") -> str:
    redirect = GATEWAY["redirect_uris"][0]
    code, login = browser.login(client_id="gateway", redirect_uri=redirect, scope=scope)
    response = browser.client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "code_verifier": login.verifier}, auth=("gateway", SECRETS["BRIDGE_CLIENT_GATEWAY_SECRET"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["access_token"])


def _exchange(browser: Browser, token: str, **overrides: str):  # type: ignore[no-untyped-def]
    form = {"grant_type": EXCHANGE, "subject_token": token, "subject_token_type": AT,
            "audience": "orders-api"}
    form.update(overrides)
    return browser.client.post("/token", data=form,
                               auth=("gateway", SECRETS["BRIDGE_CLIENT_GATEWAY_SECRET"]))


def test_token_exchange_for_an_allowed_audience(browser: Browser) -> None:
    original = _gateway_token(browser)
    response = _exchange(browser, original, scope="openid")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["issued_token_type"] == AT and "refresh_token" not in body
    exchanged = jwt.decode(body["access_token"], options={"verify_signature": False})
    first = jwt.decode(original, options={"verify_signature": False})
    validate_payload(exchanged)
    assert exchanged["aud"] == "orders-api" and exchanged["client_id"] == "gateway"
    assert exchanged["sub"] == first["sub"] and exchanged["roles"] == first["roles"]
    assert exchanged["scope"] == "openid"
    assert exchanged["exp"] <= first["exp"]  # never outlives what it was exchanged for
    assert "email" in first and "email" not in exchanged  # narrowed scope, narrower claims


@pytest.mark.parametrize("overrides,error", [
    ({"audience": "payroll-api"}, "invalid_target"),
    ({"scope": "openid groups"}, "invalid_scope"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
    ({"subject_token": "not.a.token"}, "invalid_token"),
])
def test_token_exchange_refusals(browser: Browser, overrides: dict[str, str], error: str) -> None:
    response = _exchange(browser, _gateway_token(browser), **overrides)
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == error


def test_token_exchange_refuses_tokens_meant_for_someone_else(browser: Browser) -> None:
    demo_token = browser.tokens()["access_token"]  # aud demo-api, not the gateway's
    response = _exchange(browser, demo_token)
    assert response.get_json()["error"] == "invalid_token"


def test_public_clients_cannot_exchange(browser: Browser) -> None:
    response = browser.client.post("/token", data={
        "grant_type": EXCHANGE, "client_id": "demo", "subject_token": "x",
        "subject_token_type": AT, "audience": "orders-api"})
    assert response.get_json()["error"] == "unauthorized_client"


def test_introspection(browser: Browser) -> None:
    token = _gateway_token(browser)
    orders_auth = ("orders", SECRETS["BRIDGE_CLIENT_ORDERS_SECRET"])
    gateway_auth = ("gateway", SECRETS["BRIDGE_CLIENT_GATEWAY_SECRET"])
    exchanged = _exchange(browser, token).get_json()["access_token"]
    # The orders API may introspect a token meant for it.
    answer = browser.client.post("/introspect", data={"token": exchanged}, auth=orders_auth)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["active"] is True and body["aud"] == "orders-api" and body["client_id"] == "gateway"
    # ... but not a token for the gateway's API, which is none of its business.
    assert browser.client.post("/introspect", data={"token": token},
                               auth=orders_auth).get_json() == {"active": False}
    assert browser.client.post("/introspect", data={"token": token},
                               auth=gateway_auth).get_json()["active"] is True
    assert browser.client.post("/introspect", data={"token": "garbage"},
                               auth=gateway_auth).get_json() == {"active": False}
    public = browser.client.post("/introspect", data={"token": token, "client_id": "demo"})
    assert public.status_code == 401


def test_introspection_of_refresh_tokens(browser: Browser) -> None:
    redirect = GATEWAY["redirect_uris"][0]
    auth = ("gateway", SECRETS["BRIDGE_CLIENT_GATEWAY_SECRET"])
    code, login = browser.login(client_id="gateway", redirect_uri=redirect)
    refresh = browser.client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "code_verifier": login.verifier}, auth=auth).get_json()["refresh_token"]
    assert browser.client.post("/introspect", data={"token": refresh},
                               auth=auth).get_json()["token_type"] == "refresh_token"
    browser.client.post("/revoke", data={"token": refresh}, auth=auth)
    assert browser.client.post("/introspect", data={"token": refresh},
                               auth=auth).get_json() == {"active": False}


def test_revoke_everything_of_a_subject_or_an_idp(browser: Browser, bridge: Services) -> None:
    alice = browser.tokens("alice")
    alice_again = browser.tokens("alice")
    bob = browser.tokens("bob")
    sub = jwt.decode(alice["access_token"], options={"verify_signature": False})["sub"]
    assert Revocation(bridge).revoke_all(subject=sub, actor="test:offboarding") == 2
    assert browser.refresh(alice["refresh_token"]).status_code == 400
    assert browser.refresh(alice_again["refresh_token"]).status_code == 400
    bob = browser.refresh(bob["refresh_token"]).get_json()
    event = [e for e in audit_events(bridge.db) if e["event"] == "revoke_all"][0]
    assert event["detail"] == {"actor": "test:offboarding", "families": 2, "reason": "admin"}
    assert Revocation(bridge).revoke_all(idp_slug="dev", actor="test:compromised") == 1
    assert browser.refresh(bob["refresh_token"]).status_code == 400


def test_tokens_of_an_ended_login_cannot_be_exchanged_and_exchanges_end_with_it(
        browser: Browser, caplog: pytest.LogCaptureFixture) -> None:
    redirect = GATEWAY["redirect_uris"][0]
    gateway_auth = ("gateway", SECRETS["BRIDGE_CLIENT_GATEWAY_SECRET"])
    orders_auth = ("orders", SECRETS["BRIDGE_CLIENT_ORDERS_SECRET"])
    code, login = browser.login(client_id="gateway", redirect_uri=redirect)
    tokens = browser.client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "code_verifier": login.verifier}, auth=gateway_auth).get_json()
    exchanged = _exchange(browser, tokens["access_token"]).get_json()["access_token"]
    assert browser.client.post("/introspect", data={"token": exchanged},
                               auth=orders_auth).get_json()["active"] is True
    out = browser.client.post("/logout", data={"refresh_token": tokens["refresh_token"]},
                              auth=gateway_auth)
    assert out.status_code == 200
    # The login is over: its access token buys nothing more, and what it bought ends too.
    again = _exchange(browser, tokens["access_token"])
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert "access_token" not in again.get_json()
    assert "token_invalid" in caplog.text
    assert browser.client.post("/introspect", data={"token": exchanged},
                               auth=orders_auth).get_json() == {"active": False}
