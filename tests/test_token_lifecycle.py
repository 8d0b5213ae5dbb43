"""Token lifecycle: refresh policy per client, key algorithms per client, key rotation with live
tokens verifying through JWKS."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select

from bridge.clock import FixedClock
from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services, assemble_services
from bridge.store.db import Database
from bridge.store.models import RefreshFamily
from bridge.web import create_app
from tests.conftest import CONFIDENTIAL_CLIENT, DEMO_CLIENT, make_settings
from tests.helpers import Browser

STRICT = {"client_id": "strict", "redirect_uris": ["https://strict.example.com/cb"],
          "audience": "strict-api", "refresh_reuse_interval_seconds": 0,
          "refresh_idle_timeout_seconds": 600, "refresh_token_ttl_seconds": 3600}
EDDSA = {"client_id": "ed", "redirect_uris": ["https://ed.example.com/cb"], "audience": "ed-api",
         "token_signing_alg": "EdDSA"}
RSA = {"client_id": "rs", "redirect_uris": ["https://rs.example.com/cb"], "audience": "rs-api",
       "token_signing_alg": "RS256"}


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path,
                         clients=[DEMO_CLIENT, CONFIDENTIAL_CLIENT, STRICT, EDDSA, RSA])


def _tokens(browser: Browser, client: dict) -> dict:
    redirect = client["redirect_uris"][0]
    code, login = browser.login(client_id=client["client_id"], redirect_uri=redirect)
    response = browser.exchange(code, login.verifier, client_id=client["client_id"],
                                redirect_uri=redirect)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _verify(browser: Browser, token: str, audience: str) -> dict:
    jwks = jwt.PyJWKSet.from_dict(browser.client.get("/.well-known/jwks.json").get_json())
    header = jwt.get_unverified_header(token)
    key = jwks[header["kid"]]
    return jwt.decode(token, key.key, algorithms=[header["alg"]], audience=audience,
                      issuer="https://bridge.example.com")


def test_retry_within_the_reuse_interval_returns_the_same_successor(browser: Browser) -> None:
    first = browser.tokens()
    a = browser.refresh(first["refresh_token"]).get_json()
    b = browser.refresh(first["refresh_token"]).get_json()  # a second tab, or a lost response
    assert a["refresh_token"] == b["refresh_token"]
    assert a["access_token"] != b["access_token"]
    # The successor works, once; the family is intact.
    assert browser.refresh(a["refresh_token"]).status_code == 200
    with browser.bridge.db.transaction() as session:
        assert session.query(RefreshFamily).one().revoked_at is None


def test_without_a_reuse_interval_a_retry_revokes(browser: Browser) -> None:
    first = _tokens(browser, STRICT)
    assert browser.refresh(first["refresh_token"], client_id="strict").status_code == 200
    again = browser.refresh(first["refresh_token"], client_id="strict")
    assert again.status_code == 400
    assert browser.last_audit().code == "refresh_token_reused"


def test_retry_after_the_interval_revokes(browser: Browser, bridge: Services) -> None:
    clock = FixedClock(bridge.clock.now())
    bridge.clock = clock
    bridge.keys.clock = clock
    first = browser.tokens()
    assert browser.refresh(first["refresh_token"]).status_code == 200
    clock.advance(6)
    again = browser.refresh(first["refresh_token"])
    assert again.status_code == 400
    assert browser.last_audit().code == "refresh_token_reused"


def test_idle_timeout_and_absolute_lifetime(browser: Browser, bridge: Services) -> None:
    clock = FixedClock(bridge.clock.now())
    bridge.clock = clock
    bridge.keys.clock = clock
    tokens = _tokens(browser, STRICT)
    clock.advance(500)
    tokens = browser.refresh(tokens["refresh_token"], client_id="strict").get_json()
    clock.advance(500)  # 1000 s since login but only 500 since the last use: still fine
    tokens = browser.refresh(tokens["refresh_token"], client_id="strict").get_json()
    clock.advance(601)
    idle = browser.refresh(tokens["refresh_token"], client_id="strict")
    assert idle.status_code == 400 and browser.last_audit().code == "refresh_token_idle"

    clock.at = time.time()  # a new login: the IdP signs with the real time
    fresh = _tokens(browser, STRICT)
    for _ in range(9):  # rotating every 500 s never extends the one-hour absolute lifetime
        clock.advance(500)
        response = browser.refresh(fresh["refresh_token"], client_id="strict")
        if response.status_code != 200:
            break
        fresh = response.get_json()
    assert response.status_code == 400
    assert browser.last_audit().code == "refresh_token_expired"


@pytest.mark.parametrize("spec,alg", [(EDDSA, "EdDSA"), (RSA, "RS256"), (DEMO_CLIENT, "ES256")])
def test_signing_algorithm_per_client(browser: Browser, spec: dict, alg: str) -> None:
    token = _tokens(browser, spec)["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == alg
    claims = _verify(browser, token, spec["audience"])
    assert claims["client_id"] == spec["client_id"]
    keys = browser.client.get("/.well-known/jwks.json").get_json()["keys"]
    assert {k["kty"] for k in keys} == {"EC", "OKP", "RSA"}


def test_keys_rotate_while_tokens_live_and_all_verify_through_jwks(browser: Browser,
                                                                   bridge: Services) -> None:
    # The key ring's clock moves; logins keep the real time the IdP signs with.
    clock = FixedClock(bridge.clock.now())
    bridge.keys.clock = clock
    before = browser.tokens()["access_token"]
    new_kids = bridge.keys.rotate()  # published now, signing after the lead
    assert len(new_kids) == 3  # one per algorithm in use
    published = {k["kid"] for k in browser.client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert set(new_kids) <= published  # verifiers see the new key before any token uses it
    during = browser.tokens()["access_token"]
    assert jwt.get_unverified_header(during)["kid"] == jwt.get_unverified_header(before)["kid"]

    clock.advance(601)
    bridge.keys.invalidate()
    after = browser.tokens()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] in new_kids
    for token in (before, during, after):
        # The old key stays published while tokens it signed are alive.
        claims = jwt.decode(token, options={"verify_signature": False})
        clock.at = claims["iat"] + 1
        bridge.keys.invalidate()
        _verify(browser, token, "demo-api")

    clock.at = time.time() + 601 + 600 + 61
    bridge.keys.invalidate()
    published = {k["kid"] for k in browser.client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert jwt.get_unverified_header(before)["kid"] not in published  # retired and expired


def test_the_key_that_signs_changes_when_its_successor_starts_without_a_reread(
        bridge: Services) -> None:
    # The ring keeps the key it chose (every token asks); the choice must end at the moment the
    # next key starts signing, also while the table's read stays cached, and be made again when
    # the clock is set back.
    clock = FixedClock(bridge.clock.now())
    bridge.keys.clock = clock
    bridge.keys.cache_seconds = 10**9
    old = bridge.keys.signing_key("ES256").kid
    created = set(bridge.keys.rotate())
    (successor,) = {row.kid for row in bridge.keys._keys() if row.alg == "ES256"} & created
    starts = clock.now() + bridge.keys.publish_lead_seconds
    assert bridge.keys.signing_key("ES256").kid == old
    clock.at = starts - 0.001
    assert bridge.keys.signing_key("ES256").kid == old
    clock.at = starts
    assert bridge.keys.signing_key("ES256").kid == successor
    clock.at = starts - 1
    assert bridge.keys.signing_key("ES256").kid == old
    clock.at = starts + 5
    assert bridge.keys.signing_key("ES256").kid == successor


def test_rotation_is_skipped_while_keys_are_young(bridge: Services) -> None:
    assert bridge.keys.rotate(older_than=30 * 86400) == []
    assert len(bridge.keys.rotate(older_than=0)) == 3


def test_key_encryption_key_protects_signing_keys(bridge: Services, settings: Settings) -> None:
    from bridge.store.models import SigningKey

    with bridge.db.transaction() as session:
        stored = session.query(SigningKey).first()
    assert b"PRIVATE KEY" not in stored.private_key_encrypted
    other = assemble_services(settings.__class__(**{**settings.__dict__,
                                                   "key_encryption_key": "A" * 43 + "="}),
                              bridge.db, bridge.clock, bridge.idps)
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot be decrypted"):
        other.keys.signing_key("ES256")
    assert create_app(services=bridge) is not None


@pytest.mark.parametrize("path", ["checks", "one_statement"])
def test_a_code_exchanged_twice_at_once_ends_the_login_it_started(
        browser: Browser, bridge: Services, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """RFC 6749 §4.1.2 whatever the timing: a thief racing the client with a stolen code. Both
    exchanges find the code unused: both read it before either redeems it ("checks"), or, on
    PostgreSQL, both send the one statement that checks and redeems it at once
    ("one_statement"). One wins, and the loser revokes what the winner started."""
    from bridge.oauth.grants import authorization_code as grant

    if path == "one_statement" and bridge.db.dialect != "postgresql":
        pytest.skip("the exchange in one statement is PostgreSQL's")
    code, login = browser.login()
    both_there = threading.Barrier(2)
    first_calls = iter(range(2))
    if path == "checks":
        real_find = grant.find_code

        def find_code(connection, code_hash):  # type: ignore[no-untyped-def]
            row = real_find(connection, code_hash)
            if next(first_calls, None) is not None:
                both_there.wait(timeout=20)  # neither redeems before both have read it unused
            return row

        monkeypatch.setattr(grant, "find_code", find_code)
        # On PostgreSQL an exchange that passes every check is one statement: declined here,
        # so that both go through the checks and the redeem that follows them.
        monkeypatch.setattr(grant.AuthorizationCodeGrant, "_exchange_at_once",
                            lambda *_args: None)
    else:
        real_exchange = grant.exchange_in_one_statement

        def exchange_in_one_statement(*args):  # type: ignore[no-untyped-def]
            if next(first_calls, None) is not None:
                both_there.wait(timeout=20)  # both statements sent at once
            return real_exchange(*args)

        monkeypatch.setattr(grant, "exchange_in_one_statement", exchange_in_one_statement)
    app = browser.client.application

    def exchange(_: int) -> tuple[int, dict]:
        response = app.test_client().post("/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": "demo",
            "redirect_uri": login.redirect_uri, "code_verifier": login.verifier})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(exchange, range(2)), key=lambda result: result[0])
    monkeypatch.undo()
    (won, tokens), (lost, refusal) = results
    assert (won, lost, refusal["error"]) == (200, 400, "invalid_grant"), results
    with bridge.db.transaction() as session:
        family = session.scalars(select(RefreshFamily)).one()
    assert family.revoked_reason == "code_reuse"
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
