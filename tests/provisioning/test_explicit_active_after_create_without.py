"""docs/deprovisioning.md: a PUT or PATCH setting "active" to true lets the person in again;
a create that leaves "active" out keeps a refused person refused. When SCIM made the refusal (a
user deleted), the IdP's next explicit "active": true lifts it, although the user was stored as
active; when a security event made it, only account-enabled does (decision 23)."""

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
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, OKTA_REACTIVATE, okta_user
from tests.provisioning.test_scim_create_without_active import TRANSMITTER
from tests.provisioning.transmitter import RISC, user


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


def _create_without_active(scim: Scim) -> str:  # noqa: F811
    body = okta_user(ALICE_NAME_ID, "alice")
    del body["active"]
    created = scim("POST", "/Users", body)
    assert created.status_code == 201
    return str(created.get_json()["id"])


def _say_active(scim: Scim, how: str, user_id: str) -> None:  # noqa: F811
    if how == "PATCH":
        answer = scim("PATCH", f"/Users/{user_id}", OKTA_REACTIVATE)
    else:
        answer = scim("PUT", f"/Users/{user_id}", okta_user(ALICE_NAME_ID, "alice", active=True))
    assert answer.status_code == 200


@pytest.mark.parametrize("how", ["PATCH", "PUT"])
def test_an_explicit_active_true_after_a_create_without_active_lifts_a_scim_refusal(
        how: str, scim: Scim, browser: Browser) -> None:  # noqa: F811
    first = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    assert scim("PATCH", f"/Users/{first}", OKTA_DEACTIVATE).status_code == 200
    assert scim("DELETE", f"/Users/{first}").status_code == 204
    user_id = _create_without_active(scim)
    assert login_refused(browser)
    # A PUT that leaves "active" out still says nothing.
    silent = okta_user(ALICE_NAME_ID, "alice")
    del silent["active"]
    assert scim("PUT", f"/Users/{user_id}", silent).status_code == 200
    assert login_refused(browser)

    _say_active(scim, how, user_id)
    assert not login_refused(browser)


@pytest.mark.parametrize("how", ["PATCH", "PUT"])
def test_an_explicit_active_true_after_a_create_without_active_keeps_an_events_refusal(
        how: str, scim: Scim, browser: Browser, client: FlaskClient) -> None:  # noqa: F811
    assert client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-disabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"}).status_code == 202
    user_id = _create_without_active(scim)
    assert login_refused(browser)
    _say_active(scim, how, user_id)
    assert login_refused(browser)
    assert client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-enabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"}).status_code == 202
    assert not login_refused(browser)
