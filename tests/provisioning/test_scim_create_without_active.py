"""Decision 23: only an explicit "active": true (by SCIM) or account-enabled lifts a refusal.
A person the transmitter disabled (account-disabled) stays refused when the IdP's SCIM client
creates a user for them without saying "active"."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.helpers import Browser
from tests.provisioning.conftest import (  # noqa: F401
    ALICE_NAME_ID,
    Scim,
    login_refused,
    scim,
    scim_user_key,
    settings,
)
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


def test_a_scim_create_that_does_not_say_active_keeps_a_disabled_person_refused(
        scim: Scim, browser: Browser, client: FlaskClient) -> None:  # noqa: F811
    disabled = client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-disabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert disabled.status_code == 202
    assert login_refused(browser)

    body = okta_user(ALICE_NAME_ID, "alice")
    del body["active"]
    assert scim("POST", "/Users", body).status_code == 201
    # Nobody said "active": true, and the transmitter did not say account-enabled.
    assert login_refused(browser)


def test_a_scim_create_that_does_not_say_active_keeps_a_deleted_users_person_refused(
        scim: Scim, browser: Browser) -> None:  # noqa: F811
    """Deleted by SCIM (so refused), then created again without "active": stored, still
    refused; a create that says "active": true is what lets the person in again."""
    first = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    assert scim("PATCH", f"/Users/{first}", OKTA_DEACTIVATE).status_code == 200
    assert scim("DELETE", f"/Users/{first}").status_code == 204
    assert login_refused(browser)

    body = okta_user(ALICE_NAME_ID, "alice")
    del body["active"]
    created = scim("POST", "/Users", body)
    assert created.status_code == 201
    assert login_refused(browser)

    again = scim("DELETE", f"/Users/{created.get_json()['id']}")
    assert again.status_code == 204
    assert scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).status_code == 201
    assert not login_refused(browser)
