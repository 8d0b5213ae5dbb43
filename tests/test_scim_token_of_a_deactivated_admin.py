"""A SCIM token an admin issued while signed in is the admin's power too: the admin, deactivated
by their IdP (an account-disabled event, or SCIM), must not lift their own refusal with it. The
token records whose it is and ends with them; and a refusal an event made is lifted by an
account-enabled event only, never by SCIM (decision 23)."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from lxml import html

from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from bridge.store.models import AuditEvent, DeprovisionedSubject, ProvisioningToken, ScimUser
from tests.helpers import Browser
from tests.provisioning.conftest import (  # noqa: F401
    ALICE_NAME_ID,
    Scim,
    idp_settings,
    issue_token,
    login_refused,
    scim,
    scim_user_key,
    settings,
)
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user
from tests.provisioning.test_admin_session_after_deprovisioning import _admin_sign_in
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()


@pytest.fixture
def idp_settings() -> str:  # noqa: F811
    return TRANSMITTER.settings_toml()


def _issue_as_admin(browser: Browser) -> tuple[str, str]:
    page = browser.client.get("/admin/")
    csrf = html.fromstring(page.get_data(as_text=True)).xpath(
        "//input[@name='csrf_token']/@value")[0]
    issued = browser.client.post("/admin/api/idps/dev/scim-token",
                                 headers={"X-CSRF-Token": csrf})
    assert issued.status_code == 201, issued.get_data(as_text=True)
    return issued.get_json()["id"], issued.get_json()["token"]


def _event(app: Flask, event: str) -> None:
    answer = app.test_client().post("/events/dev", data=TRANSMITTER.set(
        {RISC + event: {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert answer.status_code == 202


def _unauthorized(response: object) -> bool:
    error = response.get_json()  # type: ignore[attr-defined]
    return (response.status_code == 401  # type: ignore[attr-defined]
            and "scim_unauthorized" in error["detail"])


def test_a_scim_token_issued_by_a_deactivated_admin_cannot_reinstate_them(
        app: Flask, bridge: Services, browser: Browser, dev_idp: DevIdp) -> None:
    _admin_sign_in(browser, dev_idp)
    token_id, scim_token = _issue_as_admin(browser)
    with bridge.db.transaction() as session:
        row = session.get(ProvisioningToken, token_id)
        assert row is not None and row.owner_idp_slug == "dev" and row.owner_subject

    _event(app, "account-disabled")
    assert login_refused(browser)
    assert browser.client.get("/admin/").status_code != 200

    own = Scim(app.test_client(), scim_token)
    created = own("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert _unauthorized(created), created.get_data(as_text=True)
    assert login_refused(browser)
    with bridge.db.transaction() as session:
        assert session.get(ProvisioningToken, token_id).revoked_at is not None  # type: ignore[union-attr]
        assert session.query(ScimUser).count() == 0
        audited = [json.loads(e.detail_json) for e in session.query(AuditEvent).filter(
            AuditEvent.event == "deprovision")]
    assert [d["scim_tokens"] for d in audited] == [[token_id]]


def test_a_scim_deactivation_of_the_admin_revokes_the_scim_token_they_issued(
        app: Flask, bridge: Services, browser: Browser, dev_idp: DevIdp) -> None:
    _admin_sign_in(browser, dev_idp)
    token_id, scim_token = _issue_as_admin(browser)
    own = Scim(app.test_client(), scim_token)
    created = own("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert created.status_code == 201
    user_id = created.get_json()["id"]
    # The IdP's client deactivates the admin with the token the admin issued: it is the last
    # thing that token does.
    assert own("PATCH", f"/Users/{user_id}", OKTA_DEACTIVATE).status_code == 200
    back = own("PATCH", f"/Users/{user_id}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": True}}]})
    assert _unauthorized(back)
    assert login_refused(browser)
    # Another admin's (here: the command line's) token carries the provisioning on.
    other = Scim(app.test_client(), issue_token(app))
    assert other("GET", f"/Users/{user_id}").status_code == 200


def test_scim_never_lifts_a_refusal_an_event_made(
        app: Flask, bridge: Services, browser: Browser) -> None:
    _event(app, "account-disabled")
    assert login_refused(browser)
    client = Scim(app.test_client(), issue_token(app))
    created = client("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert created.status_code == 201
    assert login_refused(browser)
    user_id = created.get_json()["id"]
    # A SCIM deactivation and reactivation after it do not turn it into SCIM's refusal either.
    assert client("PATCH", f"/Users/{user_id}", OKTA_DEACTIVATE).status_code == 200
    assert client("PUT", f"/Users/{user_id}",
                okta_user(ALICE_NAME_ID, "alice")).status_code == 200
    assert login_refused(browser)
    with bridge.db.transaction() as session:
        assert [r.source for r in session.query(DeprovisionedSubject)] == ["event"]
    # The IdP's transmitter says the account is enabled: that lifts it.
    _event(app, "account-enabled")
    assert not login_refused(browser)
