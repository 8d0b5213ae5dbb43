"""DPoP end to end (RFC 9449): a login through the pysaml2 IdP, then the token endpoint, refresh,
introspection, discovery and /userinfo with proofs made by joserfc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from flask.testing import FlaskClient

from bridge.config import Settings, load_settings
from bridge.dev.saml_idp import DevIdp
from bridge.errors import ConfigError
from bridge.store.db import Database
from bridge.store.models import RefreshFamily
from tests.conftest import (
    CONFIDENTIAL_CLIENT,
    CONFIDENTIAL_SECRET,
    DEMO_CLIENT,
    TEST_KEK,
    make_settings,
)
from tests.dpop_tools import DpopApp
from tests.helpers import DEMO_REDIRECT, Browser

# demo: a public SPA that must use DPoP; spa: one that may; backend: a confidential client that
# may; plain: DPoP off.
CLIENTS = [
    {**DEMO_CLIENT, "claims_version": 3, "dpop": "required"},
    {**DEMO_CLIENT, "client_id": "spa", "claims_version": 3, "dpop": "allowed"},
    {**CONFIDENTIAL_CLIENT, "claims_version": 3, "dpop": "allowed"},
    {**DEMO_CLIENT, "client_id": "plain", "claims_version": 3},
]


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=CLIENTS)


def claims_of(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def code_form(browser: Browser, client_id: str = "demo") -> dict[str, str]:
    code, login = browser.login(client_id=client_id)
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": DEMO_REDIRECT,
            "client_id": client_id, "code_verifier": login.verifier}


def dpop_login(browser: Browser, client: FlaskClient, client_id: str = "demo",
               app: DpopApp | None = None) -> tuple[DpopApp, dict[str, Any]]:
    app = app or DpopApp(client)
    response = app.token(code_form(browser, client_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    return app, response.get_json()


def test_a_login_with_a_proof_gets_tokens_bound_to_its_key(browser: Browser,
                                                           client: FlaskClient) -> None:
    app = DpopApp(client)
    form = code_form(browser)
    # The first try has no nonce: refused with one to use, and the code is not used up.
    first = client.post("/token", data=form,
                        headers={"DPoP": app.key.proof("POST", app.base_url + "/token")})
    assert first.status_code == 400
    assert first.get_json()["error"] == "use_dpop_nonce"
    assert first.headers["DPoP-Nonce"]
    app.nonce = first.headers["DPoP-Nonce"]
    response = app.token(form)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": app.key.jkt}
    assert claims_of(body["access_token"])["ver"] == 3
    assert response.headers["DPoP-Nonce"]
    with browser.bridge.db.transaction() as session:
        assert session.query(RefreshFamily).one().dpop_jkt == app.key.jkt


def test_a_nonce_in_another_script_is_asked_again_not_an_error(browser: Browser,
                                                              client: FlaskClient) -> None:
    app = DpopApp(client)
    form = code_form(browser)
    first = client.post("/token", data=form,
                        headers={"DPoP": app.key.proof("POST", app.base_url + "/token")})
    window, _, mac = first.headers["DPoP-Nonce"].partition(".")
    for forged in (f"{window}.{mac[:-1]}é",
                   window.translate({ord(d): 0x0660 + int(d) for d in "0123456789"}) + "." + mac):
        refused = client.post("/token", data=form, headers={
            "DPoP": app.key.proof("POST", app.base_url + "/token", nonce=forged)})
        assert refused.status_code == 400, refused.get_data(as_text=True)
        assert refused.get_json()["error"] == "use_dpop_nonce"
    assert browser.count(RefreshFamily) == 0


def test_a_client_that_requires_dpop_gets_nothing_without_a_proof(browser: Browser,
                                                                  client: FlaskClient) -> None:
    form = code_form(browser)
    refused = client.post("/token", data=form)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_dpop_proof"
    assert refused.headers["DPoP-Nonce"]  # the nonce its first proof can use
    assert browser.count(RefreshFamily) == 0
    assert DpopApp(client).token(form).status_code == 200  # the code was not used up


def test_refreshes_need_the_same_key_and_a_wrong_one_ends_nothing(browser: Browser,
                                                                  client: FlaskClient) -> None:
    app, tokens = dpop_login(browser, client)
    refreshed = app.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    body = refreshed.get_json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": app.key.jkt}
    other = DpopApp(client).refresh(body["refresh_token"])
    assert other.status_code == 400
    assert other.get_json()["error"] == "invalid_grant"
    assert browser.last_audit().code == "refresh_token_key_mismatch"
    assert app.refresh(body["refresh_token"]).status_code == 200


def test_a_client_that_allows_dpop_binds_only_logins_made_with_a_proof(
        browser: Browser, client: FlaskClient) -> None:
    app, tokens = dpop_login(browser, client, "spa")
    without = browser.refresh(tokens["refresh_token"], "spa")
    assert without.status_code == 400
    assert browser.last_audit().code == "refresh_token_key_mismatch"
    assert app.refresh(tokens["refresh_token"], "spa").status_code == 200
    # A login without a proof stays a Bearer login.
    code, login = browser.login(client_id="spa")
    plain = browser.exchange(code, login.verifier, client_id="spa").get_json()
    assert plain["token_type"] == "Bearer" and "cnf" not in claims_of(plain["access_token"])
    assert browser.refresh(plain["refresh_token"], "spa").status_code == 200


def test_a_client_with_dpop_off_ignores_the_header(browser: Browser, client: FlaskClient) -> None:
    response = DpopApp(client).token(code_form(browser, "plain"))
    assert response.status_code == 200
    assert response.get_json()["token_type"] == "Bearer"
    assert "DPoP-Nonce" not in response.headers


BACKEND = ("backend", CONFIDENTIAL_SECRET)
BACKEND_REDIRECT = "https://backend.example.com/callback"


def backend_login(browser: Browser, app: DpopApp) -> dict[str, Any]:
    code, login = browser.login(client_id="backend", redirect_uri=BACKEND_REDIRECT)
    response = app.token({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": BACKEND_REDIRECT, "code_verifier": login.verifier},
                         BACKEND)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def test_a_confidential_clients_refresh_tokens_stay_unbound(browser: Browser,
                                                           client: FlaskClient) -> None:
    app = DpopApp(client)
    tokens = backend_login(browser, app)
    assert claims_of(tokens["access_token"])["cnf"] == {"jkt": app.key.jkt}
    with browser.bridge.db.transaction() as session:
        assert session.query(RefreshFamily).one().dpop_jkt is None
    # RFC 9449 §5: its refresh token is bound to its credentials; a new key binds the new
    # access token.
    other = DpopApp(client)
    refreshed = other.refresh(tokens["refresh_token"], "backend", BACKEND)
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert claims_of(refreshed.get_json()["access_token"])["cnf"] == {"jkt": other.key.jkt}


def test_introspection_and_discovery_say_dpop(browser: Browser, client: FlaskClient) -> None:
    app = DpopApp(client)
    tokens = backend_login(browser, app)
    answer = client.post("/introspect", data={"token": tokens["access_token"]},
                         auth=BACKEND).get_json()
    assert answer["active"] is True
    assert answer["token_type"] == "DPoP" and answer["cnf"] == {"jkt": app.key.jkt}
    discovery = client.get("/.well-known/openid-configuration").get_json()
    assert discovery["dpop_signing_alg_values_supported"] == ["ES256", "ES384", "EdDSA",
                                                              "Ed25519"]


def test_userinfo_takes_a_bound_token_only_with_a_proof_of_its_key(browser: Browser,
                                                                  client: FlaskClient) -> None:
    app, tokens = dpop_login(browser, client)
    answer = app.userinfo(tokens["access_token"])
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["sub"]
    assert answer.headers["DPoP-Nonce"]
    as_bearer = client.get("/userinfo",
                           headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


@pytest.mark.parametrize("client_entry,problem", [
    ({**DEMO_CLIENT, "claims_version": 2, "dpop": "allowed"}, "needs claims_version = 3"),
    ({**DEMO_CLIENT, "claims_version": 3, "dpop": "yes"}, "must be \"off\""),
])
def test_dpop_settings_are_checked_at_start_up(client_entry: dict[str, object],
                                               problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK},
                      overrides={"clients": [client_entry]})
    assert any(problem in p and "dpop" in p for p in refused.value.problems), refused.value


@pytest.mark.parametrize("client_id", ["demo", "spa"])
def test_a_code_asked_for_with_dpop_jkt_is_exchanged_only_with_that_key(
        browser: Browser, client: FlaskClient, client_id: str) -> None:
    """RFC 9449 §10: a code stolen from the redirect is useless without the key, and is not
    used up by the attempt."""
    app = DpopApp(client)
    code, login = browser.login(client_id=client_id, dpop_jkt=app.key.jkt)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": DEMO_REDIRECT,
            "client_id": client_id, "code_verifier": login.verifier}
    thief = DpopApp(client).token(form)
    assert thief.status_code == 400 and thief.get_json()["error"] == "invalid_grant"
    assert browser.last_audit().code == "code_key_mismatch"
    if client_id == "spa":  # DPoP allowed, not required: no proof at all is refused the same
        assert browser.exchange(code, login.verifier, client_id="spa").status_code == 400
        assert browser.last_audit().code == "code_key_mismatch"
    assert browser.count(RefreshFamily) == 0
    response = app.token(form)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert claims_of(response.get_json()["access_token"])["cnf"] == {"jkt": app.key.jkt}


def test_dpop_jkt_must_be_a_thumbprint(browser: Browser) -> None:
    response = browser.authorize(dpop_jkt="not a thumbprint")
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]
    # A client without DPoP ignores it.
    ignored = browser.authorize(client_id="plain", dpop_jkt="x")
    assert ignored.status_code == 302 and "SAMLRequest=" in ignored.headers["Location"]
