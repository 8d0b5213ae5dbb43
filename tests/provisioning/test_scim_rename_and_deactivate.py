"""A common offboarding step renames the departing person's account (their UPN, and so their
SCIM userName) as it disables it; Entra ID sends both changes in one PATCH, or the rename first
and the deactivation in its next cycle. Either way the user deactivated is the one whose logins
the person holds: "Every refresh family of the person is revoked" (docs/deprovisioning.md)
must hold for the logins made under the name the user had."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, login_refused
from tests.provisioning.scim_shapes import ENTRA_DISABLE, ENTRA_ENABLE, PATCH, entra_user

RENAMED = "disabled-" + ALICE_NAME_ID
RENAME: dict[str, Any] = {"op": "Replace", "path": "userName", "value": RENAMED}
DISABLE: dict[str, Any] = {"op": "Replace", "path": "active", "value": "False"}
STEPS: dict[str, list[dict[str, Any]]] = {
    "one PATCH": [{"schemas": [PATCH], "Operations": [RENAME, DISABLE]}],
    "rename, then disable": [{"schemas": [PATCH], "Operations": [RENAME]}, ENTRA_DISABLE],
}


def _active(client: FlaskClient, token: str) -> bool:
    answer = client.post("/introspect", data={"token": token},
                         auth=("backend", CONFIDENTIAL_SECRET))
    return bool(answer.get_json()["active"])


@pytest.mark.parametrize("steps", sorted(STEPS))
def test_renaming_while_deactivating_ends_the_persons_logins(steps: str, scim: Scim,
                                                             browser: Browser,
                                                             client: FlaskClient) -> None:
    created = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice"))
    alice = browser.tokens("alice")
    for body in STEPS[steps]:
        answer = scim("PATCH", f"/Users/{created.get_json()['id']}", body)
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert scim("GET", f"/Users/{created.get_json()['id']}").get_json()["active"] is False

    # alice's login is over, not only the new name's (which holds no login).
    refreshed = browser.refresh(alice["refresh_token"])
    assert (_active(client, alice["access_token"]), refreshed.status_code) == (False, 400)


def test_deleting_a_renamed_user_ends_the_logins_made_under_its_old_name(
        scim: Scim, browser: Browser, client: FlaskClient) -> None:
    created = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice"))
    alice = browser.tokens("alice")
    user = f"/Users/{created.get_json()['id']}"
    assert scim("PATCH", user, {"schemas": [PATCH], "Operations": [RENAME]}).status_code == 200
    assert scim("DELETE", user).status_code == 204

    assert _active(client, alice["access_token"]) is False
    assert browser.refresh(alice["refresh_token"]).status_code == 400
    assert login_refused(browser)


@pytest.mark.parametrize("scim_user_key", ["externalId"])
def test_removing_the_external_id_while_deactivating_ends_the_persons_logins(
        scim: Scim, browser: Browser, client: FlaskClient) -> None:
    created = scim("POST", "/Users", entra_user("alice@example.com", ALICE_NAME_ID))
    alice = browser.tokens("alice")
    answer = scim("PATCH", f"/Users/{created.get_json()['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": "externalId"}, DISABLE]})
    assert answer.status_code == 200, answer.get_data(as_text=True)

    assert _active(client, alice["access_token"]) is False
    assert login_refused(browser)


def test_a_name_given_to_another_user_is_no_longer_reached_by_the_user_that_had_it(
        scim: Scim, browser: Browser) -> None:
    """The IdP renamed alice's user away and gave her name to a new user: the new user's
    person is who logs in under it now, and the first user's deactivation does not refuse them."""
    first = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "first"))
    user = f"/Users/{first.get_json()['id']}"
    assert scim("PATCH", user, {"schemas": [PATCH], "Operations": [RENAME]}).status_code == 200
    assert scim("POST", "/Users", entra_user(ALICE_NAME_ID, "second")).status_code == 201
    assert scim("PATCH", user, ENTRA_DISABLE).status_code == 200

    assert not login_refused(browser)


def test_reactivating_a_renamed_user_keeps_its_old_name_refused(scim: Scim,
                                                                browser: Browser) -> None:
    """Renamed and deactivated in one PATCH, then reactivated: the user's name now is let in,
    the one it had stays refused (the IdP said active of the user it calls by its new name)."""
    created = scim("POST", "/Users", entra_user(ALICE_NAME_ID, "alice"))
    user = f"/Users/{created.get_json()['id']}"
    assert scim("PATCH", user, STEPS["one PATCH"][0]).status_code == 200
    assert login_refused(browser)
    assert scim("PATCH", user, ENTRA_ENABLE).status_code == 200
    assert login_refused(browser)


