"""Security Event Tokens pushed by the IdP's transmitter (RFC 8417, RFC 8935): a signed CAEP
session-revoked ends exactly that session's logins; RISC account-disabled ends all of the
person's and refuses the next until account-enabled; credential-compromise ends all of them;
anything else is acknowledged and changes nothing. From the attacker's side: forged, replayed,
stale, foreign-audience or foreign-issuer SETs are refused with 400 and change nothing."""

from __future__ import annotations

import threading
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from bridge.store.models import AuditEvent, DeprovisionedSubject, ReceivedSecurityEvent, RefreshFamily
from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, BOB_NAME_ID
from tests.provisioning.transmitter import CAEP, RISC, Transmitter, session_of, user
from tests.provisioning.transmitter import ISSUER as TRANSMITTER_ISSUER

TRANSMITTER = Transmitter()
SESSION_REVOKED = CAEP + "session-revoked"
DISABLED = RISC + "account-disabled"


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


def _push(client: FlaskClient, token: str, slug: str = "dev") -> TestResponse:
    return client.post(f"/events/{slug}", data=token,
                       headers={"Content-Type": "application/secevent+jwt"})


def _active(client: FlaskClient, token: str) -> bool:
    response = client.post("/introspect", data={"token": token},
                           auth=("backend", CONFIDENTIAL_SECRET))
    return bool(response.get_json()["active"])


def _session_index(bridge: Services, refresh_token: str) -> str:
    with bridge.db.transaction() as session:
        families = session.query(RefreshFamily).order_by(RefreshFamily.created_at).all()
        return str(families[-1].session_index)


def _state(bridge: Services) -> tuple[object, ...]:
    with bridge.db.transaction() as session:
        revoked = sorted((f.id, f.revoked_at) for f in session.query(RefreshFamily)
                         if f.revoked_at is not None)
        return revoked, session.query(DeprovisionedSubject).count()


def test_session_revoked_ends_exactly_that_session(client: FlaskClient, browser: Browser,
                                                   bridge: Services) -> None:
    first = browser.tokens("alice")
    first_session = _session_index(bridge, first["refresh_token"])
    second = browser.tokens("alice")
    bob = browser.tokens("bob")
    assert _session_index(bridge, second["refresh_token"]) != first_session
    token = TRANSMITTER.set({SESSION_REVOKED: {"event_timestamp": 1700000000}},
                            sub_id=session_of(ALICE_NAME_ID, first_session))
    response = _push(client, token)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert not _active(client, first["access_token"])
    assert browser.refresh(first["refresh_token"]).status_code == 400
    assert _active(client, second["access_token"]) and _active(client, bob["access_token"])
    assert browser.refresh(second["refresh_token"]).status_code == 200
    assert browser.tokens("alice")  # a session's end refuses no new login


def test_account_disabled_ends_every_login_until_enabled(client: FlaskClient, browser: Browser,
                                                         bridge: Services) -> None:
    logins = [browser.tokens("alice"), browser.tokens("alice")]
    bob = browser.tokens("bob")
    assert _push(client, TRANSMITTER.set({DISABLED: {}}, sub_id=user(ALICE_NAME_ID))
                 ).status_code == 202
    assert not any(_active(client, login["access_token"]) for login in logins)
    assert _active(client, bob["access_token"])
    refused = browser.post_acs(browser.signed_response(browser.start(), "alice"))
    assert refused.status_code == 403 and refused.get_json()["code"] == "login_deprovisioned"
    assert _push(client, TRANSMITTER.set({RISC + "account-enabled": {}},
                                         sub_id=user(ALICE_NAME_ID))).status_code == 202
    assert browser.tokens("alice")


def test_credential_compromise_ends_every_login_of_the_person(
        client: FlaskClient, browser: Browser, bridge: Services) -> None:
    alice, bob = browser.tokens("alice"), browser.tokens("bob")
    event = {RISC + "credential-compromise": {"credential_type": "password"}}
    # The subject inside the event, as transmitters of the earlier drafts send it.
    token = TRANSMITTER.set({key: {**value, "subject": user(BOB_NAME_ID)}
                             for key, value in event.items()})
    assert _push(client, token).status_code == 202
    assert not _active(client, bob["access_token"]) and _active(client, alice["access_token"])
    assert browser.tokens("bob")  # a new login (with new credentials) is not refused


def test_other_events_are_acknowledged_and_change_nothing(client: FlaskClient,
                                                          browser: Browser,
                                                          bridge: Services) -> None:
    alice = browser.tokens("alice")
    before = _state(bridge)
    for events in ({CAEP + "token-claims-change": {"claims": {"role": "x"}}},
                   {"https://example.com/event/unknown": {}},
                   {DISABLED: {}}):  # no subject we can name
        assert _push(client, TRANSMITTER.set(events)).status_code == 202
    assert _state(bridge) == before and _active(client, alice["access_token"])
    with bridge.db.transaction() as session:
        ignored = session.query(AuditEvent).filter(AuditEvent.event == "security_event",
                                                   AuditEvent.outcome == "ignored").count()
    assert ignored == 3


# --- from the attacker's side ---------------------------------------------------------------------

FORGER = Transmitter()  # the same kid, another key
ES_FORGER = Transmitter(alg="ES256")


def _disable_alice(**overrides: Any) -> dict[str, Any]:
    return TRANSMITTER.claims({DISABLED: {}}, sub_id=user(ALICE_NAME_ID), **overrides)


def _hs256_with_public_key() -> str:
    """Algorithm confusion: the transmitter's public key used as an HMAC secret."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "secevent+jwt",
                             "kid": TRANSMITTER.kid}).encode())
    body = b64(json.dumps(_disable_alice()).encode())
    secret = json.dumps(TRANSMITTER.jwks()["keys"][0]).encode()
    signature = b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


def _unsigned() -> str:
    return jwt.encode(_disable_alice(), None, algorithm="none",
                      headers={"typ": "secevent+jwt", "kid": TRANSMITTER.kid})


def _embedded_key() -> str:
    """A forger's key carried in the token's own header (jwk): keys come from the settings."""
    return FORGER.sign(_disable_alice(), jwk=FORGER.jwks()["keys"][0])


ATTACKS = {
    "forged signature": (lambda: FORGER.sign(_disable_alice()), "set_signature_invalid",
                         "invalid_key"),
    "embedded key": (_embedded_key, "set_signature_invalid", "invalid_key"),
    "another algorithm": (lambda: ES_FORGER.sign(_disable_alice(), kid=TRANSMITTER.kid),
                          "set_signature_invalid", "invalid_key"),
    "hs256 with the public key": (_hs256_with_public_key, "set_signature_invalid",
                                  "invalid_key"),
    "unsigned": (_unsigned, "set_signature_invalid", "invalid_key"),
    "foreign audience": (lambda: TRANSMITTER.sign(_disable_alice(
        aud="https://other-receiver.example.com/events")), "set_audience_invalid",
        "invalid_audience"),
    "foreign issuer": (lambda: TRANSMITTER.sign(_disable_alice(iss="https://evil.example.com")),
                       "set_issuer_invalid", "invalid_issuer"),
    "stale": (lambda: TRANSMITTER.sign(_disable_alice(iat=1_600_000_000)), "set_stale",
              "invalid_request"),
    "no jti": (lambda: TRANSMITTER.sign({k: v for k, v in _disable_alice().items() if k != "jti"}),
               "set_invalid", "invalid_request"),
    "no events": (lambda: TRANSMITTER.sign({**_disable_alice(), "events": []}), "set_invalid",
                  "invalid_request"),
    "not a jwt": (lambda: "not.a.jwt", "set_invalid", "invalid_request"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_set_that_is_not_the_transmitters_changes_nothing(attack: str, client: FlaskClient,
                                                            browser: Browser,
                                                            bridge: Services) -> None:
    alice = browser.tokens("alice")
    before = _state(bridge)
    make, code, err = ATTACKS[attack]
    response = _push(client, make())
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["err"] == err
    with bridge.db.transaction() as session:
        refusal = session.query(AuditEvent).filter(AuditEvent.event == "security_event").one()
    assert (refusal.outcome, refusal.code) == ("refused", code)
    assert _state(bridge) == before and _active(client, alice["access_token"])


def test_a_replayed_set_changes_nothing(client: FlaskClient, browser: Browser,
                                        bridge: Services) -> None:
    disable = TRANSMITTER.sign(_disable_alice())
    assert _push(client, disable).status_code == 202
    assert _push(client, TRANSMITTER.set({RISC + "account-enabled": {}},
                                         sub_id=user(ALICE_NAME_ID))).status_code == 202
    alice = browser.tokens("alice")
    replayed = _push(client, disable)
    assert replayed.status_code == 400 and replayed.get_json()["err"] == "invalid_request"
    assert _active(client, alice["access_token"]) and browser.tokens("alice")


def test_the_receiver_takes_only_sets(client: FlaskClient, browser: Browser,
                                      bridge: Services) -> None:
    token = TRANSMITTER.sign(_disable_alice())
    wrong_type = client.post("/events/dev", data=token, headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400
    # An IdP with no transmitter configured, and no IdP at all, receive nothing.
    assert _push(client, token, slug="other").status_code == 404
    assert _push(client, token, slug="nosuch").status_code == 404
    with bridge.db.transaction() as session:
        assert session.query(DeprovisionedSubject).count() == 0


class TestKeysFromAUrl:
    """A jwks_url is fetched by the metadata fetcher, with its rules: an address that is not
    public is never connected to, and the SET is refused with nothing changed."""

    @pytest.fixture
    def idp_settings(self) -> str:
        return ('security_events = { issuer = "https://idp.example.org/ssf", '
                'jwks_url = "https://127.0.0.1:9/keys" }')

    def test_a_private_jwks_url_is_not_fetched(self, client: FlaskClient, browser: Browser,
                                               bridge: Services) -> None:
        alice = browser.tokens("alice")
        before = _state(bridge)
        response = _push(client, TRANSMITTER.sign(_disable_alice()))
        assert response.status_code == 400 and response.get_json()["err"] == "invalid_key"
        with bridge.db.transaction() as session:
            refusal = session.query(AuditEvent).filter(AuditEvent.event == "security_event").one()
        assert refusal.code == "set_keys_unavailable"
        assert "public addresses" in refusal.detail_json
        assert _state(bridge) == before and _active(client, alice["access_token"])


def test_concurrent_disablings_of_one_person_are_all_accepted(app: Flask, browser: Browser,
                                                              bridge: Services) -> None:
    """Several SETs about one person at once (a transmitter's retries, two event types): each is
    acted on and answered 202; none is mistaken for a replay or fails on the refusal's key."""
    alice = browser.tokens("alice")
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def push() -> None:
        token = TRANSMITTER.sign(_disable_alice())
        barrier.wait()
        statuses.append(_push(app.test_client(), token).status_code)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 8
    assert not _active(app.test_client(), alice["access_token"])
    with bridge.db.transaction() as session:
        assert session.query(DeprovisionedSubject).count() == 1


def _received(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return session.query(ReceivedSecurityEvent).count()


NUL_SETS = {
    "jti": lambda: TRANSMITTER.sign(_disable_alice(jti="one\x00two")),
    "sub_id": lambda: TRANSMITTER.set({DISABLED: {}}, sub_id=user(ALICE_NAME_ID + "\x00x")),
    "iss_sub iss": lambda: TRANSMITTER.set({DISABLED: {}}, sub_id={
        "format": "iss_sub", "iss": TRANSMITTER_ISSUER + "\x00", "sub": ALICE_NAME_ID}),
    "event type": lambda: TRANSMITTER.sign(TRANSMITTER.claims(
        {DISABLED + "\x00": {}}, sub_id=user(ALICE_NAME_ID))),
    "event key": lambda: TRANSMITTER.sign(TRANSMITTER.claims(
        {DISABLED: {"reason\x00": "x"}}, sub_id=user(ALICE_NAME_ID))),
    "session id": lambda: TRANSMITTER.sign(TRANSMITTER.claims(
        {SESSION_REVOKED: {}}, sub_id=session_of(ALICE_NAME_ID, "s\x00"))),
    "unpaired surrogate": lambda: TRANSMITTER.sign(TRANSMITTER.claims(
        {DISABLED: {}}, sub_id=user("\ud800" + ALICE_NAME_ID))),
}


@pytest.mark.parametrize("where", sorted(NUL_SETS))
def test_a_set_holding_a_nul_character_is_refused_and_changes_nothing(
        where: str, client: FlaskClient, browser: Browser, bridge: Services) -> None:
    """JSON carries NUL as \\u0000, which no text column of PostgreSQL takes: a SET whose decoded
    values (object keys included) hold one is refused as invalid, on either database."""
    alice = browser.tokens("alice")
    before = _state(bridge)
    response = _push(client, NUL_SETS[where]())
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["err"] == "invalid_request"
    with bridge.db.transaction() as session:
        refusal = session.query(AuditEvent).filter(AuditEvent.event == "security_event").one()
    assert (refusal.outcome, refusal.code) == ("refused", "set_invalid")
    assert _received(bridge) == 0
    assert _state(bridge) == before and _active(client, alice["access_token"])


def test_a_nul_in_the_iss_is_refused_and_changes_nothing(client: FlaskClient, browser: Browser,
                                                         bridge: Services) -> None:
    alice = browser.tokens("alice")
    before = _state(bridge)
    response = _push(client, TRANSMITTER.sign(_disable_alice(iss=TRANSMITTER_ISSUER + "\x00")))
    assert response.status_code == 400 and response.get_json()["err"] == "invalid_issuer"
    assert _received(bridge) == 0
    assert _state(bridge) == before and _active(client, alice["access_token"])


def test_an_iss_sub_of_another_issuer_names_nobody(client: FlaskClient, browser: Browser,
                                                   bridge: Services) -> None:
    """RFC 9493 ``iss_sub``: the ``sub`` is the named issuer's. One of another issuer, even with
    a ``sub`` equal to one of this IdP's NameIDs, is acknowledged (RFC 8935) and changes
    nothing, as a subject the bridge cannot name."""
    alice = browser.tokens("alice")
    before = _state(bridge)
    foreign = {"format": "iss_sub", "iss": "https://other-idp.example.net", "sub": ALICE_NAME_ID}
    no_iss = {"format": "iss_sub", "sub": ALICE_NAME_ID}
    # Not a string: no issuer's name, ours included (a list cannot even be looked up in a set).
    listed = {"format": "iss_sub", "iss": [TRANSMITTER_ISSUER], "sub": ALICE_NAME_ID}
    session = _session_index(bridge, alice["refresh_token"])
    for token in (TRANSMITTER.set({DISABLED: {}}, sub_id=foreign),
                  TRANSMITTER.set({DISABLED: {}}, sub_id=no_iss),
                  TRANSMITTER.set({DISABLED: {}}, sub_id=listed),
                  TRANSMITTER.set({DISABLED: {}}, sub_id={**listed, "iss": {"a": 1}}),
                  TRANSMITTER.set({RISC + "credential-compromise": {}}, sub_id=foreign),
                  TRANSMITTER.set({SESSION_REVOKED: {}}, sub_id={
                      "format": "complex", "user": foreign,
                      "session": {"format": "opaque", "id": session}})):
        response = _push(client, token)
        assert response.status_code == 202, response.get_data(as_text=True)
    assert _state(bridge) == before and _active(client, alice["access_token"])
    assert browser.tokens("alice")
    with bridge.db.transaction() as session_:
        outcomes = [e.outcome for e in session_.query(AuditEvent).filter(
            AuditEvent.event == "security_event")]
    assert outcomes == ["ignored"] * 6


@pytest.mark.parametrize("issuer", ["transmitter", "entity ID"])
def test_an_iss_sub_of_this_idp_names_the_person(issuer: str, client: FlaskClient,
                                                 browser: Browser, bridge: Services,
                                                 dev_idp: DevIdp) -> None:
    alice, bob = browser.tokens("alice"), browser.tokens("bob")
    iss = TRANSMITTER_ISSUER if issuer == "transmitter" else dev_idp.entity_id
    response = _push(client, TRANSMITTER.set(
        {DISABLED: {}}, sub_id={"format": "iss_sub", "iss": iss, "sub": ALICE_NAME_ID}))
    assert response.status_code == 202
    assert not _active(client, alice["access_token"]) and _active(client, bob["access_token"])
