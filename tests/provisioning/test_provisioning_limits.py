"""The provisioning channels' own rate limits, per address and counted before the expensive
work: a wrong SCIM bearer token or a forged SET spends the budget as a good one does, and over
it every request is a 429 with Retry-After in the endpoint's error shape, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from bridge.store.db import Database
from bridge.store.models import AuditEvent, DeprovisionedSubject, ReceivedSecurityEvent, ScimUser
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, issue_token
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()
FORGER = Transmitter()
DISABLED = RISC + "account-disabled"
LIMIT = 3


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             session_other_idp: DevIdp, idp_settings: str) -> Settings:
    session_other_idp.write_metadata(idp_dir, "other")
    dev = idp_dir / "dev.toml"
    dev.write_text(f"{idp_settings}\n" + dev.read_text())
    api = {**CONFIDENTIAL_CLIENT, "audience": DEMO_CLIENT["audience"]}
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, api],
                         rate_limit_scim_per_address=f"{LIMIT}/minute",
                         rate_limit_security_events_per_address=f"{LIMIT}/minute")


def _scim(client: FlaskClient, method: str, path: str, token: str, body: object = None,
          address: str = "192.0.2.10") -> object:
    return client.open(f"/scim/v2/{path}", method=method, json=body,
                       headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "application/scim+json"},
                       environ_base={"REMOTE_ADDR": address})


def _push(client: FlaskClient, token: str, address: str = "192.0.2.10") -> object:
    return client.post("/events/dev", data=token, environ_base={"REMOTE_ADDR": address},
                       headers={"Content-Type": "application/secevent+jwt"})


def _count(bridge: Services, model: type) -> int:
    with bridge.db.transaction() as session:
        return session.query(model).count()


def test_scim_over_the_limit_is_a_scim_429_even_for_the_right_token(
        app: Flask, client: FlaskClient, bridge: Services) -> None:
    token = issue_token(app)
    # Wrong tokens, at this IdP and at one that does not exist, spend the address's budget.
    answers = [_scim(client, "GET", "dev/Users", "wrong-token"),
               _scim(client, "GET", "nosuch/Users", "wrong-token"),
               _scim(client, "GET", "dev/ServiceProviderConfig", "wrong-token")]
    assert [a.status_code for a in answers] == [401, 401, 401]
    refusals = _count(bridge, AuditEvent)
    created = _scim(client, "POST", "dev/Users", token,
                    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                     "userName": "mallory", "active": False})
    assert created.status_code == 429, created.get_data(as_text=True)
    assert int(created.headers["Retry-After"]) > 0
    assert created.mimetype == "application/scim+json"
    body = created.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "429" and body["detail"].startswith("rate_limited")
    assert _count(bridge, ScimUser) == 0 and _count(bridge, DeprovisionedSubject) == 0
    assert _count(bridge, AuditEvent) == refusals  # refused before any work, not even audited
    # The budget is the address's: another provisioning client is served.
    assert _scim(client, "GET", "dev/Users", token, address="192.0.2.11").status_code == 200


def test_the_default_budgets_are_the_documented_ones(database: Database, idp_dir: Path,
                                                    tmp_path: Path, dev_idp: DevIdp) -> None:
    defaults = make_settings(database, idp_dir, tmp_path)
    # Entra ID expects 25 requests a second, and may send two (a lookup, a PATCH) per person.
    assert defaults.rate_limit_scim_per_address == "1800/minute"
    assert defaults.rate_limit_security_events_per_address == "1800/minute"


def test_sets_over_the_limit_are_429_and_change_nothing(client: FlaskClient, browser: Browser,
                                                        bridge: Services) -> None:
    alice = browser.tokens("alice")
    forged = [_push(client, FORGER.set({DISABLED: {}}, sub_id=user(ALICE_NAME_ID)))
              for _ in range(LIMIT)]
    assert [a.status_code for a in forged] == [400] * LIMIT
    genuine = TRANSMITTER.set({DISABLED: {}}, sub_id=user(ALICE_NAME_ID))
    limited = _push(client, genuine)
    assert limited.status_code == 429, limited.get_data(as_text=True)
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["err"] == "rate_limited"
    assert set(limited.get_json()) == {"err", "description"}
    assert _count(bridge, ReceivedSecurityEvent) == 0
    assert _count(bridge, DeprovisionedSubject) == 0
    introspected = client.post("/introspect", data={"token": alice["access_token"]},
                               auth=("backend", CONFIDENTIAL_SECRET))
    assert introspected.get_json()["active"]
    # Another address, the transmitter's, still delivers: the SET is acted on.
    assert _push(client, genuine, address="192.0.2.11").status_code == 202
    assert _count(bridge, DeprovisionedSubject) == 1
