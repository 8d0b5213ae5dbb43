"""The SCIM Users endpoint as Okta's and Entra ID's provisioning clients drive it: the lookup
before a create, the create, reads, updates, and the deactivation that ends the person's logins
at once and refuses the next one with ``login_deprovisioned`` until they are reactivated."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.services import Services
from bridge.store.models import DeprovisionedSubject, RefreshFamily, ScimUser
from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, BOB_NAME_ID, Scim
from tests.provisioning.scim_shapes import (
    ENTERPRISE,
    ENTRA_DISABLE,
    ENTRA_DISABLE_FLAGGED,
    ENTRA_ENABLE,
    ENTRA_HEADERS,
    ENTRA_MANAGER_AND_PHONE,
    ENTRA_UPDATE,
    OKTA_CUSTOM_SCHEMA,
    OKTA_DEACTIVATE,
    OKTA_HEADERS,
    OKTA_REACTIVATE,
    entra_user,
    okta_user,
    okta_user_with_custom_attributes,
)


def _introspect(client: FlaskClient, token: str) -> dict[str, Any]:
    response = client.post("/introspect", data={"token": token},
                           auth=("backend", CONFIDENTIAL_SECRET))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _refused_login(browser: Browser, user: str = "alice") -> None:
    login = browser.start()
    response = browser.post_acs(browser.signed_response(login, user))
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.get_json()["code"] == "login_deprovisioned"


def _live_families(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return session.query(RefreshFamily).filter(RefreshFamily.revoked_at.is_(None)).count()


@pytest.mark.parametrize("scim_user_key", ["externalId"])
def test_okta_provisions_then_deactivates_and_reactivates(scim: Scim, browser: Browser,
                                                         client: FlaskClient,
                                                         bridge: Services) -> None:
    scim.headers = OKTA_HEADERS
    tokens = browser.tokens("alice")
    # Okta looks the user up first, then creates it.
    found = scim("GET", '/Users?filter=userName%20eq%20%22alice%40example.com%22&startIndex=1'
                        '&count=100')
    assert found.status_code == 200 and found.get_json()["totalResults"] == 0
    created = scim("POST", "/Users", okta_user("alice@example.com", ALICE_NAME_ID))
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.mimetype == "application/scim+json"
    user = created.get_json()
    assert user["active"] is True and "password" not in user
    assert created.headers["Location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/dev/Users/{user['id']}")
    # A profile change: Okta sends the whole user on PUT.
    renamed = okta_user("alice@example.com", ALICE_NAME_ID)
    renamed["name"]["familyName"] = "Andersen"
    replaced = scim("PUT", f"/Users/{user['id']}", renamed)
    assert replaced.status_code == 200 and replaced.get_json()["name"]["familyName"] == "Andersen"
    assert _introspect(client, tokens["access_token"])["active"] is True

    deactivated = scim("PATCH", f"/Users/{user['id']}", OKTA_DEACTIVATE)
    assert deactivated.status_code == 200 and deactivated.get_json()["active"] is False
    assert _introspect(client, tokens["access_token"]) == {"active": False}
    assert _introspect(client, tokens["refresh_token"]) == {"active": False}
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
    _refused_login(browser)
    assert browser.tokens("bob")  # nobody else is touched

    assert scim("PATCH", f"/Users/{user['id']}", OKTA_REACTIVATE).get_json()["active"] is True
    assert browser.tokens("alice")["access_token"]


def test_entra_provisions_updates_disables_and_deletes(scim: Scim, browser: Browser,
                                                      client: FlaskClient,
                                                      bridge: Services) -> None:
    scim.headers = ENTRA_HEADERS
    tokens = browser.tokens("alice")
    other = browser.tokens("alice")  # a second login of the same person
    found = scim("GET", f'/Users?filter=userName eq "{ALICE_NAME_ID}"')
    assert found.get_json()["totalResults"] == 0 and found.get_json()["Resources"] == []
    created = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice"))
    assert created.status_code == 201, created.get_data(as_text=True)
    user_id = created.get_json()["id"]
    assert scim("GET", f'/Users?filter=userName eq "{ALICE_NAME_ID.upper()}"'
                ).get_json()["Resources"][0]["id"] == user_id  # userName is not case-exact
    assert scim("GET", '/Users?filter=externalId eq "alice"').get_json()["totalResults"] == 1
    updated = scim("PATCH", f"/Users/{user_id}", ENTRA_UPDATE)
    assert updated.status_code == 200, updated.get_data(as_text=True)
    body = updated.get_json()
    assert body["emails"][0]["value"] == "updatedEmail@microsoft.com"
    assert body["name"]["familyName"] == "updatedFamilyName"
    assert body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == \
        "Marketing"
    assert _introspect(client, tokens["access_token"])["active"] is True

    disabled = scim("PATCH", f"/Users/{user_id}", ENTRA_DISABLE)
    assert disabled.status_code == 200 and disabled.get_json()["active"] is False
    for token in (tokens, other):
        assert _introspect(client, token["access_token"]) == {"active": False}
        assert browser.refresh(token["refresh_token"]).status_code == 400
    _refused_login(browser)
    assert scim("PATCH", f"/Users/{user_id}", ENTRA_ENABLE).get_json()["active"] is True
    live = browser.tokens("alice")

    assert scim("DELETE", f"/Users/{user_id}").status_code == 204
    assert _introspect(client, live["access_token"]) == {"active": False}
    _refused_login(browser)
    missing = scim("GET", f"/Users/{user_id}")
    assert missing.status_code == 404 and missing.mimetype == "application/scim+json"
    assert missing.get_json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    # Provisioned again (rehired): logins work again.
    assert scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice")).status_code == 201
    assert browser.tokens("alice")["access_token"]


def test_a_user_created_inactive_cannot_log_in(scim: Scim, browser: Browser) -> None:
    created = scim("POST", "/Users", okta_user(BOB_NAME_ID, "bob", active=False))
    assert created.status_code == 201 and created.get_json()["active"] is False
    _refused_login(browser, "bob")
    assert browser.tokens("alice")["access_token"]


def test_user_names_are_unique_per_idp(scim: Scim, bridge: Services) -> None:
    assert scim("POST", "/Users", entra_user("Carol@example.com", "c1")).status_code == 201
    again = scim("POST", "/Users", entra_user("carol@EXAMPLE.com", "c2"))
    assert again.status_code == 409
    assert again.get_json()["scimType"] == "uniqueness"
    with bridge.db.transaction() as session:
        assert session.query(ScimUser).count() == 1


@pytest.mark.parametrize(("method", "path", "body", "scim_type"), [
    ("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]},
     "invalidValue"),
    ("POST", "/Users", ["not", "an", "object"], "invalidSyntax"),
    ("POST", "/Users", {**entra_user("x", "y"), "userName": "a\u0000b"}, "invalidValue"),
    ("POST", "/Users", {**entra_user("x" * 300, "y")}, "invalidValue"),
    ("GET", '/Users?filter=userName eq', None, "invalidFilter"),
    ("GET", '/Users?filter=userName zz "x"', None, "invalidFilter"),
])
def test_bad_requests_are_refused_with_the_scim_type(scim: Scim, method: str, path: str,
                                                     body: object, scim_type: str,
                                                     bridge: Services) -> None:
    response = scim(method, path, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["scimType"] == scim_type
    with bridge.db.transaction() as session:
        assert session.query(ScimUser).count() == 0


def test_a_bad_patch_changes_nothing(scim: Scim, bridge: Services) -> None:
    user_id = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "a")).get_json()["id"]
    bad = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "remove", "path": "userName"}]}
    response = scim("PATCH", f"/Users/{user_id}", bad)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert scim("GET", f"/Users/{user_id}").get_json()["active"] is True
    with bridge.db.transaction() as session:
        assert session.query(DeprovisionedSubject).count() == 0


def test_paging_and_other_filters(scim: Scim) -> None:
    for n in range(5):
        assert scim("POST", "/Users", entra_user(f"user{n}@example.com", f"e{n}")).status_code == 201
    page = scim("GET", "/Users?startIndex=2&count=2").get_json()
    assert page["totalResults"] == 5 and page["itemsPerPage"] == 2 and page["startIndex"] == 2
    assert [r["userName"] for r in page["Resources"]] == ["user1@example.com", "user2@example.com"]
    found = scim("GET", '/Users?filter=userName sw "user3" or externalId eq "e4"').get_json()
    assert sorted(r["externalId"] for r in found["Resources"]) == ["e3", "e4"]
    # Past the end, however far (a startIndex beyond any database integer was a 500): empty.
    for start in ("6", "99999999999999999999"):
        beyond = scim("GET", f"/Users?startIndex={start}&count=2")
        assert beyond.status_code == 200, beyond.get_data(as_text=True)
        assert beyond.get_json()["totalResults"] == 5 and beyond.get_json()["Resources"] == []


def test_entra_profile_habits_apply_and_its_flagged_shape_disables(scim: Scim,
                                                                  browser: Browser) -> None:
    scim.headers = ENTRA_HEADERS
    user_id = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    updated = scim("PATCH", f"/Users/{user_id}", ENTRA_MANAGER_AND_PHONE)
    assert updated.status_code == 200, updated.get_data(as_text=True)
    body = updated.get_json()
    assert body[ENTERPRISE]["manager"]["value"] == "2819c223-7f76-453a-919d-413861904646"
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]
    assert scim("PATCH", f"/Users/{user_id}", ENTRA_DISABLE_FLAGGED).get_json()["active"] is False
    _refused_login(browser)


def test_okta_custom_attributes_are_kept_and_a_put_deactivates(scim: Scim, client: FlaskClient,
                                                               browser: Browser) -> None:
    scim.headers = OKTA_HEADERS
    tokens = browser.tokens("alice")
    created = scim("POST", "/Users", okta_user_with_custom_attributes(ALICE_NAME_ID, "00u1"))
    assert created.status_code == 201, created.get_data(as_text=True)
    user = created.get_json()
    assert user[OKTA_CUSTOM_SCHEMA] == {"costCenter": "4711"}
    replaced = scim("PUT", f"/Users/{user['id']}", okta_user(ALICE_NAME_ID, "00u1", active=False))
    assert replaced.status_code == 200 and replaced.get_json()["active"] is False
    assert _introspect(client, tokens["access_token"]) == {"active": False}
    _refused_login(browser)


def test_concurrent_creates_of_one_user_name_make_one_user(app: Flask, scim: Scim,
                                                           bridge: Services) -> None:
    """Provisioning clients retry and run in parallel: of twelve creates of one userName at once,
    one is created and the others are told it exists (409), never a 500."""
    barrier = threading.Barrier(12)
    statuses: list[int] = []

    def create() -> None:
        mine = Scim(app.test_client(), scim.token)
        barrier.wait()
        statuses.append(mine("POST", "/Users", entra_user("dora@example.com", "d")).status_code)

    threads = [threading.Thread(target=create) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 11, statuses
    with bridge.db.transaction() as session:
        assert session.query(ScimUser).count() == 1
