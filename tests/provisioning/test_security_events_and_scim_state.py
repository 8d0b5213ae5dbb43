"""SCIM and security events name the same people. A person whose SCIM user is inactive is
refused (docs/deprovisioning.md), and a refusal is lifted only while no SCIM user of the IdP
standing for that person is inactive (scim_subjects.inactive_user_for). An ``account-enabled`` SET must not
let in a person whose SCIM user still says ``active: false``."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, login_refused
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, PATCH, okta_user
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


def test_account_enabled_does_not_let_in_a_person_whose_scim_user_is_inactive(
        scim: Scim, browser: Browser, client: FlaskClient) -> None:
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert scim("PATCH", f"/Users/{created.get_json()['id']}", OKTA_DEACTIVATE).status_code == 200
    assert login_refused(browser)

    enabled = client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-enabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert enabled.status_code == 202

    stored = scim("GET", f"/Users/{created.get_json()['id']}").get_json()
    assert stored["active"] is False  # the SCIM user still says: deactivated
    # Still refused while the SCIM user says inactive.
    assert login_refused(browser)


def test_account_enabled_does_not_let_in_a_person_whose_renamed_scim_user_is_inactive(
        scim: Scim, browser: Browser, client: FlaskClient) -> None:
    """The user was renamed as it was deactivated: it still stands for the person it named."""
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert scim("PATCH", f"/Users/{created.get_json()['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": "gone-" + ALICE_NAME_ID},
        {"op": "replace", "value": {"active": False}}]}).status_code == 200
    assert login_refused(browser)

    enabled = client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-enabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert enabled.status_code == 202
    assert login_refused(browser)


def test_account_enabled_lets_in_a_person_no_inactive_scim_user_names(
        scim: Scim, browser: Browser, client: FlaskClient) -> None:
    disabled = client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-disabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert disabled.status_code == 202
    assert login_refused(browser)
    enabled = client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-enabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert enabled.status_code == 202
    assert not login_refused(browser)
