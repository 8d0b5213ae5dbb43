"""The SCIM endpoint from an attacker's side: without this IdP's token in force (none, a wrong
one, another IdP's, one rotated out or revoked) every request is refused with 401
``scim_unauthorized``, the refusal is audited, and nothing is read or changed."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.services import Services
from bridge.store.models import AuditEvent, DeprovisionedSubject, RefreshFamily, ScimUser
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, issue_token
from tests.provisioning.scim_shapes import ENTRA_DISABLE, OKTA_DEACTIVATE, entra_user

REQUESTS = [
    ("GET", "/Users", None),
    ("GET", '/Users?filter=userName eq "a1b2c3d4-0001"', None),
    ("POST", "/Users", entra_user("mallory@example.com", "m")),
    ("GET", "/Users/{id}", None),
    ("PUT", "/Users/{id}", {**entra_user(ALICE_NAME_ID, "a"), "active": False}),
    ("PATCH", "/Users/{id}", ENTRA_DISABLE),
    ("PATCH", "/Users/{id}", OKTA_DEACTIVATE),
    ("DELETE", "/Users/{id}", None),
    ("GET", "/ServiceProviderConfig", None),
    ("GET", "/Schemas", None),
]


def _state(bridge: Services) -> tuple[object, ...]:
    with bridge.db.transaction() as session:
        users = [(u.id, u.active, u.resource_json, u.version) for u in session.query(ScimUser)]
        blocked = session.query(DeprovisionedSubject).count()
        live = session.query(RefreshFamily).filter(RefreshFamily.revoked_at.is_(None)).count()
    return users, blocked, live


def _stolen_tokens(app: Flask) -> dict[str, str | None]:
    """Every token an attacker might hold, none of them dev's token in force."""
    rotated_out = issue_token(app)
    other_idp = issue_token(app, "other")
    return {"none": None, "wrong": "scim_" + "A" * 43, "not a scim token": "bat_" + "A" * 43,
            "other idp's": other_idp, "rotated out": rotated_out}


@pytest.fixture
def alice_user(scim: Scim, browser: Browser) -> str:
    browser.tokens("alice")  # a live login the attacker would like to end
    created = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice"))
    assert created.status_code == 201
    return str(created.get_json()["id"])


def test_requests_without_this_idps_token_in_force_are_refused(
        app: Flask, client: FlaskClient, bridge: Services, alice_user: str) -> None:
    stolen = _stolen_tokens(app)
    in_force = issue_token(app)  # rotation: the token issued before this one no longer works
    before = _state(bridge)
    for name, token in stolen.items():
        for method, path, body in REQUESTS:
            response = Scim(client, token)(method, path.format(id=alice_user), body)
            assert response.status_code == 401, (name, method, path, response.status_code)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            error = response.get_json()
            assert error["status"] == "401" and "scim_unauthorized" in error["detail"]
            assert "Resources" not in error and "userName" not in error
    assert _state(bridge) == before
    with bridge.db.transaction() as session:
        refused = session.query(AuditEvent).filter(AuditEvent.event == "scim",
                                                   AuditEvent.outcome == "refused").count()
    assert refused == len(stolen) * len(REQUESTS)
    # The token in force still works, and only for its own IdP.
    assert Scim(client, in_force)("GET", f"/Users/{alice_user}").status_code == 200
    assert Scim(client, in_force, slug="other")("GET", "/Users").status_code == 401
    assert Scim(client, in_force, slug="nosuch")("GET", "/Users").status_code == 401


def test_a_revoked_token_is_refused(app: Flask, client: FlaskClient, bridge: Services,
                                    alice_user: str) -> None:
    token = issue_token(app)
    assert Scim(client, token)("GET", "/Users").status_code == 200
    app.extensions["application"].scim_tokens.revoke("dev", actor="test")
    before = _state(bridge)
    response = Scim(client, token)("PATCH", f"/Users/{alice_user}", ENTRA_DISABLE)
    assert response.status_code == 401
    assert _state(bridge) == before


def test_one_idps_token_cannot_reach_another_idps_users(app: Flask, client: FlaskClient,
                                                        bridge: Services, alice_user: str) -> None:
    """A user ID is looked up within the caller's IdP only."""
    other = Scim(client, issue_token(app, "other"), slug="other")
    before = _state(bridge)
    for method, path, body in REQUESTS[3:8]:
        response = other(method, path.format(id=alice_user), body)
        assert response.status_code == 404, (method, path, response.status_code)
    assert other("GET", "/Users").get_json()["totalResults"] == 0
    assert _state(bridge) == before


@pytest.mark.parametrize("field", ["userName", "externalId", "familyName", "key"])
def test_a_string_that_is_not_text_is_refused_and_changes_nothing(
        scim: Scim, bridge: Services, alice_user: str, field: str) -> None:
    """JSON can carry a lone surrogate ("\\ud800"), which no database stores and no page shows:
    the body is refused as SCIM's invalidValue, naming where, and nothing changes."""
    user = entra_user("bob@example.com", "bob")
    if field == "familyName":
        user["name"]["familyName"] = "Bob \ud800"
    elif field == "key":
        user["\udfffextra"] = "x"
    else:
        user[field] = "bob\ud800"
    before = _state(bridge)
    for method, path in (("POST", "/Users"), ("PUT", f"/Users/{alice_user}")):
        refused = scim(method, path, user)
        assert refused.status_code == 400, refused.get_data(as_text=True)
        assert refused.get_json()["scimType"] == "invalidValue"
        assert "not valid Unicode text" in refused.get_json()["detail"]
    assert _state(bridge) == before
