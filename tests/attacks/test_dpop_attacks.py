"""DPoP (RFC 9449) from the attacker's side: someone who copied a token, a proof, or both, out of a
browser, or who makes proofs of their own. Every attempt is refused with its stable code, issues
nothing, and ends nothing of the real user's login."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.services import build_services
from bridge.store.db import Database
from bridge.store.models import AuditEvent, RefreshFamily, RefreshToken
from bridge.tokens.dpop import MAX_PROOF_LENGTH
from bridge.web import create_app
from tests.conftest import DEMO_CLIENT, MovableClock, make_settings
from tests.dpop_tools import DpopApp, DpopKey, b64url, unsigned_proof
from tests.helpers import DEMO_REDIRECT, Browser

URL = "https://bridge.example.com"
CLIENTS = [{**DEMO_CLIENT, "claims_version": 3, "dpop": "required"},
           {**DEMO_CLIENT, "client_id": "spa", "claims_version": 3, "dpop": "allowed"}]


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=CLIENTS)


@pytest.fixture
def victim(browser: Browser, client: FlaskClient) -> DpopApp:
    """The real app: logged in, with its key, its nonce and its tokens."""
    app = DpopApp(client)
    code, login = browser.login()
    response = app.token({"grant_type": "authorization_code", "code": code, "client_id": "demo",
                          "redirect_uri": DEMO_REDIRECT, "code_verifier": login.verifier})
    assert response.status_code == 200, response.get_data(as_text=True)
    app.tokens = response.get_json()  # type: ignore[attr-defined]
    return app


def tokens(app: DpopApp) -> dict[str, Any]:
    return app.tokens  # type: ignore[attr-defined,no-any-return]


def code_form(browser: Browser) -> dict[str, str]:
    code, login = browser.login()
    return {"grant_type": "authorization_code", "code": code, "client_id": "demo",
            "redirect_uri": DEMO_REDIRECT, "code_verifier": login.verifier}


def state(browser: Browser) -> tuple[int, int, int]:
    """What a token request can create or end: families, refresh tokens, revoked families."""
    with browser.bridge.db.transaction() as session:
        revoked = session.query(RefreshFamily).filter(RefreshFamily.revoked_at.is_not(None)).count()
    return browser.count(RefreshFamily), browser.count(RefreshToken), revoked


def refused(response: TestResponse, error: str, *, status: int = 400) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error, body
    assert "access_token" not in body and "refresh_token" not in body


def audited(browser: Browser, code: str) -> None:
    event = browser.last_audit()
    assert (event.outcome, event.code) == ("refused", code), (event.event, event.code)


def post_token(client: FlaskClient, form: dict[str, str], proof: str) -> TestResponse:
    return client.post("/token", data=form, headers={"DPoP": proof})


# --- proofs that are not what they claim -------------------------------------------------------


def test_a_replayed_proof_is_refused(browser: Browser, client: FlaskClient,
                                     victim: DpopApp) -> None:
    proof = victim.key.proof("POST", URL + "/token", nonce=victim.nonce)
    first = post_token(client, {"grant_type": "refresh_token", "client_id": "demo",
                                "refresh_token": tokens(victim)["refresh_token"]}, proof)
    assert first.status_code == 200
    before = state(browser)
    # The attacker saw the proof and the (new) refresh token go by.
    replay = post_token(client, {"grant_type": "refresh_token", "client_id": "demo",
                                 "refresh_token": first.get_json()["refresh_token"]}, proof)
    refused(replay, "invalid_dpop_proof")
    audited(browser, "dpop_proof_replayed")
    assert state(browser) == before


@pytest.fixture
def other_node(settings: Settings) -> Iterator[FlaskClient]:
    """A second bridge process on the same database, as behind a load balancer."""
    node = build_services(settings, MovableClock())
    yield create_app(services=node).test_client()
    node.db.dispose()


def test_a_proof_replayed_on_another_node_is_refused(browser: Browser, client: FlaskClient,
                                                     victim: DpopApp,
                                                     other_node: FlaskClient) -> None:
    proof = victim.key.proof("POST", URL + "/token", nonce=victim.nonce)
    form = {"grant_type": "refresh_token", "client_id": "demo",
            "refresh_token": tokens(victim)["refresh_token"]}
    assert post_token(client, form, proof).status_code == 200
    before = state(browser)
    # The other node recognizes the first node's nonce, and the proof as used.
    refused(post_token(other_node, form, proof), "invalid_dpop_proof")
    audited(browser, "dpop_proof_replayed")
    assert state(browser) == before


@pytest.mark.parametrize("method,url", [
    ("POST", URL + "/userinfo"), ("GET", URL + "/token"), ("POST", "https://evil.example/token"),
    ("POST", "http://bridge.example.com/token")])
def test_a_proof_for_another_request_is_refused(browser: Browser, client: FlaskClient,
                                                victim: DpopApp, method: str, url: str) -> None:
    before = state(browser)
    proof = victim.key.proof(method, url, nonce=victim.nonce)
    refused(post_token(client, {"grant_type": "refresh_token", "client_id": "demo",
                                "refresh_token": tokens(victim)["refresh_token"]}, proof),
            "invalid_dpop_proof")
    audited(browser, "invalid_dpop_proof")
    assert state(browser) == before
    assert victim.refresh(tokens(victim)["refresh_token"]).status_code == 200


@pytest.mark.parametrize("age", [3600, 120, -60])
def test_a_stale_or_future_proof_is_refused(browser: Browser, client: FlaskClient, age: int,
                                            victim: DpopApp) -> None:
    before = state(browser)
    proof = victim.key.proof("POST", URL + "/token", nonce=victim.nonce, iat=time.time() - age)
    refused(post_token(client, {"grant_type": "refresh_token", "client_id": "demo",
                                "refresh_token": tokens(victim)["refresh_token"]}, proof),
            "invalid_dpop_proof")
    assert state(browser) == before


def test_a_proof_without_a_current_nonce_gets_one_and_nothing_else(
        browser: Browser, client: FlaskClient, victim: DpopApp) -> None:
    before = state(browser)
    window, _, mac = str(victim.nonce).partition(".")
    for nonce in (None, f"{int(window) - 5}.{mac}", f"{window}.forged", "pregenerated"):
        proof = victim.key.proof("POST", URL + "/token", nonce=nonce)
        response = post_token(client, {"grant_type": "refresh_token", "client_id": "demo",
                                       "refresh_token": tokens(victim)["refresh_token"]}, proof)
        refused(response, "use_dpop_nonce")
        assert response.headers["DPoP-Nonce"] == victim.nonce
    assert state(browser) == before


def _forged(case: str, key: DpopKey, nonce: str | None) -> str:
    claims = {"jti": "forged-" + case, "htm": "POST", "htu": URL + "/token",
              "iat": int(time.time()), "nonce": nonce}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    if case == "alg none":
        return unsigned_proof({**header, "alg": "none"}, claims)
    if case == "HS256":
        return pyjwt.encode(claims, "a-shared-secret-of-enough-length-32b", algorithm="HS256",
                            headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "eA"}})
    if case == "private jwk":
        return key.proof("POST", URL + "/token", nonce=nonce,
                         header={"jwk": dict(key.key.as_dict(private=True))})
    if case == "another key's jwk":  # signed with one key, naming another
        return key.proof("POST", URL + "/token", nonce=nonce,
                         header={"jwk": DpopKey().public_jwk})
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["alg none", "HS256", "private jwk", "another key's jwk"])
def test_forged_proofs_get_no_tokens_for_a_fresh_code(browser: Browser, client: FlaskClient,
                                                      case: str) -> None:
    app = DpopApp(client)
    form = code_form(browser)
    app.token({**form, "code": "none"})  # learn a nonce
    refused(post_token(client, form, _forged(case, app.key, app.nonce)), "invalid_dpop_proof")
    audited(browser, "invalid_dpop_proof")
    assert state(browser) == (0, 0, 0)
    assert app.token(form).status_code == 200  # the code was never used up


def _malformed_proof(case: str, app: DpopApp, endpoint: str) -> str:
    """A proof a stranger makes without any secret: its own key, or none at all."""
    if case == "header nested deeply":
        depth = 1400  # deeper than json's decoder follows, within the proof's length limit
        nested = b64url(('{"typ":' + "[" * depth + "]" * depth + "}").encode())
        return f"{nested}.{b64url(b'{}')}.{b64url(b'x')}"
    if case == "claims nested deeply":
        depth = 1200  # the header (the key) takes its share of the length limit
        proof = app.key.signed_claims(('{"jti":' + "[" * depth + "]" * depth + "}").encode())
        assert len(proof) <= MAX_PROOF_LENGTH
        return proof
    iat = {"iat past a float": int("9" * 400), "iat far in the past": -int("9" * 400),
           "iat a boolean": True}[case]
    return app.key.proof("POST", URL + endpoint, nonce=app.nonce, claims={"iat": iat})


@pytest.mark.parametrize("case", ["header nested deeply", "claims nested deeply",
                                  "iat past a float", "iat far in the past", "iat a boolean"])
@pytest.mark.parametrize("endpoint", ["/token", "/revoke", "/logout"])
def test_malformed_proofs_are_refused_not_a_server_error(
        browser: Browser, client: FlaskClient, victim: DpopApp, case: str, endpoint: str) -> None:
    """JSON nested past what the decoder follows, and times no float holds, in a proof signed
    by the sender's own key: a refusal with the stable code, and the login goes on."""
    newest = tokens(victim)["refresh_token"]
    form = ({"grant_type": "refresh_token", "refresh_token": newest, "client_id": "demo"}
            if endpoint == "/token" else
            {"token" if endpoint == "/revoke" else "refresh_token": newest, "client_id": "demo"})
    before = state(browser)
    refused(post_token(client, form, _malformed_proof(case, victim, endpoint))
            if endpoint == "/token" else
            client.post(endpoint, data=form,
                        headers={"DPoP": _malformed_proof(case, victim, endpoint)}),
            "invalid_dpop_proof")
    assert state(browser) == before
    assert victim.refresh(newest).status_code == 200


# --- stolen tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("thief", ["no proof", "own key", "own key, allowed client"])
def test_a_copied_refresh_token_is_useless_and_ends_nothing(
        browser: Browser, client: FlaskClient, victim: DpopApp, thief: str) -> None:
    stolen = tokens(victim)["refresh_token"]
    before = state(browser)
    if thief == "no proof":
        response = client.post("/token", data={"grant_type": "refresh_token", "client_id": "demo",
                                                "refresh_token": stolen})
        refused(response, "invalid_dpop_proof")  # demo requires DPoP
    elif thief == "own key":
        refused(DpopApp(client).refresh(stolen), "invalid_grant")
        audited(browser, "refresh_token_key_mismatch")
    else:
        # The same token at the app that allows DPoP: still another client's token.
        refused(DpopApp(client).refresh(stolen, "spa"), "invalid_grant")
    assert state(browser) == before  # nothing used up, nothing revoked
    assert victim.refresh(stolen).status_code == 200  # the real app carries on


@pytest.mark.parametrize("endpoint", ["/revoke", "/logout"])
def test_a_copied_refresh_token_cannot_end_the_login(browser: Browser, client: FlaskClient,
                                                     victim: DpopApp, endpoint: str) -> None:
    stolen = tokens(victim)["refresh_token"]
    field = "token" if endpoint == "/revoke" else "refresh_token"
    before = state(browser)
    refused(client.post(endpoint, data={field: stolen, "client_id": "demo"}), "invalid_grant")
    audited_after = browser.count(AuditEvent)
    thief = DpopKey().proof("POST", URL + endpoint, nonce=victim.nonce)
    refused(client.post(endpoint, data={field: stolen, "client_id": "demo"},
                        headers={"DPoP": thief}), "invalid_grant")
    assert state(browser) == before  # nothing revoked
    assert browser.count(AuditEvent) == audited_after  # and no logout recorded
    # The holder of the key ends its login with a proof.
    newest = victim.refresh(stolen).get_json()["refresh_token"]
    proof = victim.key.proof("POST", URL + endpoint, nonce=victim.nonce)
    ended = client.post(endpoint, data={field: newest, "client_id": "demo"},
                        headers={"DPoP": proof})
    assert ended.status_code == 200, ended.get_data(as_text=True)
    assert state(browser)[2] == 1


def test_an_old_refresh_token_with_another_key_does_not_trigger_reuse_revocation(
        browser: Browser, client: FlaskClient, victim: DpopApp) -> None:
    old = tokens(victim)["refresh_token"]
    newer = victim.refresh(old).get_json()["refresh_token"]
    # With the real key, the used token would mean a leak and end the login (reuse detection);
    # without it, an attacker must not be able to force that.
    refused(DpopApp(client).refresh(old), "invalid_grant")
    audited(browser, "refresh_token_key_mismatch")
    assert state(browser)[2] == 0
    assert victim.refresh(newer).status_code == 200


def test_a_bound_access_token_is_useless_without_its_key(client: FlaskClient,
                                                         victim: DpopApp) -> None:
    access = tokens(victim)["access_token"]
    as_bearer = client.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    refused(as_bearer, "invalid_token", status=401)
    assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    in_form = client.post("/userinfo", data={"access_token": access})
    refused(in_form, "invalid_token", status=401)
    # Key confusion: a valid proof, with ath, by the attacker's own key.
    attacker = DpopApp(client)
    stolen = attacker.userinfo(access)
    refused(stolen, "invalid_token", status=401)
    assert victim.userinfo(access).status_code == 200


def test_a_proof_for_another_access_token_is_refused(client: FlaskClient,
                                                     victim: DpopApp) -> None:
    access = tokens(victim)["access_token"]
    other = victim.refresh(tokens(victim)["refresh_token"]).get_json()["access_token"]
    proof = victim.key.proof("GET", URL + "/userinfo", nonce=victim.nonce, access_token=other)
    response = client.get("/userinfo", headers={"Authorization": f"DPoP {access}", "DPoP": proof})
    refused(response, "invalid_dpop_proof", status=401)
    assert response.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert victim.userinfo(access).status_code == 200


def test_two_proofs_in_one_request_are_refused(browser: Browser, client: FlaskClient,
                                               victim: DpopApp) -> None:
    proofs = [victim.key.proof("POST", URL + "/token", nonce=victim.nonce) for _ in range(2)]
    response = client.post("/token", data={"grant_type": "refresh_token", "client_id": "demo",
                                           "refresh_token": tokens(victim)["refresh_token"]},
                           headers=[("DPoP", proofs[0]), ("DPoP", proofs[1])])
    refused(response, "invalid_dpop_proof")
    assert victim.refresh(tokens(victim)["refresh_token"]).status_code == 200


def test_a_plain_token_sent_as_dpop_is_refused(browser: Browser, client: FlaskClient) -> None:
    code, login = browser.login(client_id="spa")
    plain = browser.exchange(code, login.verifier, client_id="spa").get_json()["access_token"]
    app = DpopApp(client)
    response = app.userinfo(plain)
    refused(response, "invalid_token", status=401)
