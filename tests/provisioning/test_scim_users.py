"""The SCIM Users endpoint as Okta's and Entra ID's provisioning clients drive it: the lookup
before a create, the create, reads, updates, and the deactivation that ends the person's logins
at once and refuses the next one with ``login_deprovisioned`` until they are reactivated."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.oauth.deprovisioned import deprovision
from bridge.provisioning.matching import subject_of
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
    PATCH,
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


# Spellings of one name, as Unicode's NFKC_Casefold counts them (decision 23): a compatibility
# look-alike (KELVIN SIGN, fullwidth letters), a decomposed accent, a full case fold (ß).
SAME_NAMES = [("kelvin@example.com", "\u212aelvin@example.com"),
              ("kelvin@example.com", "\uff4b\uff45\uff4c\uff56\uff49\uff4e@example.com"),
              ("jos\u00e9@example.com", "JOSE\u0301@example.com"),
              ("strasse@example.com", "Stra\u00dfe@example.com")]


@pytest.mark.parametrize("first_second", [*SAME_NAMES, *[(b, a) for a, b in SAME_NAMES]],
                         ids=lambda pair: f"{ascii(pair[0])}-then-{ascii(pair[1])}")
def test_look_alike_user_names_are_one_user_name_whichever_comes_first(
        scim: Scim, bridge: Services, first_second: tuple[str, str]) -> None:
    """A second spelling of a name is a conflict. A lookup, indexed (userName eq) or evaluated
    over the users (a compound filter), finds the user by its own name in any letter case, and
    by the other spelling finds nobody: a login's ``sub`` is the exact name's, and an IdP that
    found the user by a look-alike would link another person to it (decision 23)."""
    first, second = first_second
    created = scim("POST", "/Users", entra_user(first, "e1"))
    assert created.status_code == 201, created.get_data(as_text=True)
    with bridge.db.transaction() as session:
        before = [(u.id, u.user_name_key, u.resource_json) for u in session.query(ScimUser)]
    again = scim("POST", "/Users", entra_user(second, "e2"))
    assert again.status_code == 409, again.get_data(as_text=True)
    assert again.get_json()["scimType"] == "uniqueness"
    assert again.get_json()["detail"].startswith("scim_conflict")
    with bridge.db.transaction() as session:
        assert [(u.id, u.user_name_key, u.resource_json)
                for u in session.query(ScimUser)] == before
    in_capitals = "".join(c.upper() if c.isascii() else c for c in first)
    for name, expected in ((first, [created.get_json()["id"]]),
                           (in_capitals, [created.get_json()["id"]]), (second, [])):
        for query in (f'userName eq "{name}"', f'userName eq "{name}" and active eq true',
                      f'userName eq "{name}" or externalId eq "none"'):
            found = scim("GET", "/Users", query_string={"filter": query}).get_json()
            assert [r["id"] for r in found["Resources"]] == expected, query
    # A rename of another user to a spelling of the name is a conflict too.
    other = scim("POST", "/Users", entra_user("someone@example.com", "e3")).get_json()["id"]
    renamed = scim("PUT", f"/Users/{other}", entra_user(second, "e3"))
    assert renamed.status_code == 409


def test_names_that_only_look_alike_to_str_lower_stay_apart(scim: Scim) -> None:
    """Full case folding and NFKC join no names that are different to both: ``ı`` (dotless i)
    and ``i``, Greek and Latin letters."""
    for name in ("d\u0131m@example.com", "dim@example.com", "\u03bf@example.com",
                 "o@example.com"):
        assert scim("POST", "/Users", entra_user(name, name)).status_code == 201, name


@pytest.mark.parametrize(("method", "path", "body", "scim_type"), [
    ("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]},
     "invalidValue"),
    ("POST", "/Users", ["not", "an", "object"], "invalidSyntax"),
    ("POST", "/Users", {**entra_user("x", "y"), "userName": "a\u0000b"}, "invalidValue"),
    ("POST", "/Users", {**entra_user("x" * 300, "y")}, "invalidValue"),
    # 256 characters that case folding makes 512 (İ: i and a combining dot): over the column.
    ("POST", "/Users", {**entra_user("\u0130" * 256, "y")}, "invalidValue"),
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


def _rename(user_name: str) -> dict[str, object]:
    return {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName",
                                                "value": user_name}]}


def test_renaming_a_deactivated_user_lifts_no_refusal(scim: Scim, browser: Browser) -> None:
    user_id = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "x-alice")).get_json()["id"]
    assert scim("PATCH", f"/Users/{user_id}", OKTA_DEACTIVATE).status_code == 200
    _refused_login(browser)
    renamed = scim("PATCH", f"/Users/{user_id}", _rename("alice.archived"))
    assert renamed.status_code == 200 and renamed.get_json()["active"] is False
    _refused_login(browser)


def test_a_rename_away_and_back_keeps_a_security_events_refusal(scim: Scim, browser: Browser,
                                                               bridge: Services) -> None:
    user_id = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "x-alice")).get_json()["id"]
    subject = subject_of(bridge.idps["dev"], ALICE_NAME_ID, "x-alice")
    assert subject is not None
    with bridge.db.transaction() as session:  # as an account-disabled event does
        deprovision(session, idp_slug="dev", subject=subject, source="event",
                    reason="event_account_disabled", now=bridge.clock.now(), actor="set:test")
    for name in ("someone-else", ALICE_NAME_ID):
        assert scim("PATCH", f"/Users/{user_id}", _rename(name)).status_code == 200
    _refused_login(browser)


@pytest.mark.parametrize("scim_user_key", ["externalId"])
def test_a_second_user_naming_a_deactivated_person_lifts_no_refusal(scim: Scim,
                                                                    browser: Browser) -> None:
    first = scim("POST", "/Users", okta_user("alice@corp", ALICE_NAME_ID)).get_json()["id"]
    assert scim("PATCH", f"/Users/{first}", OKTA_DEACTIVATE).status_code == 200
    _refused_login(browser)
    assert scim("POST", "/Users", okta_user("alice2@corp", ALICE_NAME_ID)).status_code == 201
    _refused_login(browser)
    # Reactivating the first user is what lets her in again.
    assert scim("PATCH", f"/Users/{first}", OKTA_REACTIVATE).status_code == 200
    login = browser.start()
    assert browser.post_acs(browser.signed_response(login, "alice")).status_code == 302


def test_a_patch_with_too_many_operations_is_refused_before_it_is_applied(scim: Scim) -> None:
    user_id = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "x-alice")).get_json()["id"]
    add = {"op": "add", "path": "emails", "value": [{"value": "a@example.com"}]}
    refused = scim("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [add] * 101})
    assert refused.status_code == 400 and refused.get_json()["scimType"] == "invalidValue"
    emails = [e["value"] for e in scim("GET", f"/Users/{user_id}").get_json()["emails"]]
    assert "a@example.com" not in emails
    accepted = scim("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [add] * 3})
    assert accepted.status_code == 200
