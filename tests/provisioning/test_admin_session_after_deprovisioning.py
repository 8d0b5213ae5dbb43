"""docs/deprovisioning.md: "When a person is deactivated or removed at the IdP, ... the bridge
ends every login of that person at once, on every node". A person signed in to the admin pages
through the IdP is logged in too: once the IdP deactivates them, their admin session must stop
working, or a deactivated admin can issue a SCIM token and reactivate themselves."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from lxml import html
from sqlalchemy import select

from bridge.dev.saml_idp import USERS, DevIdp
from bridge.store.models import AdminSession, DeprovisionedSubject
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, login_refused
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, OKTA_REACTIVATE, okta_user
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()


@pytest.fixture
def idp_settings() -> str:
    return TRANSMITTER.settings_toml()


def _admin_ticket(browser: Browser, dev_idp: DevIdp) -> str:
    """Sign in to the admin pages at the IdP, up to the one-time ticket for /admin/callback."""
    started = browser.client.get("/admin/login/dev")
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answered = browser.post_acs(dev_idp.response_for(dev_idp.parse_request(saml_request, None),
                                                     USERS["alice"]), "dev", json=False)
    callback = urlsplit(answered.headers["Location"])
    return f"{callback.path}?{callback.query}"


def _admin_sign_in(browser: Browser, dev_idp: DevIdp) -> None:
    claimed = browser.client.get(_admin_ticket(browser, dev_idp))
    assert claimed.status_code == 303
    assert urlsplit(claimed.headers["Location"]).path == "/admin/"


def test_a_deactivated_admins_session_ends(app: Flask, browser: Browser, dev_idp: DevIdp,
                                          scim: Scim) -> None:
    _admin_sign_in(browser, dev_idp)
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    user_id = created.get_json()["id"]
    assert scim("PATCH", f"/Users/{user_id}", OKTA_DEACTIVATE).status_code == 200
    assert login_refused(browser)

    # The admin session ended with every other login of alice (sign-in page).
    page = browser.client.get("/admin/")
    still_admin = page.status_code == 200
    if still_admin:
        # Were it still working, it would be enough to undo the deactivation.
        csrf = html.fromstring(page.get_data(as_text=True)).xpath(
            "//input[@name='csrf_token']/@value")[0]
        issued = browser.client.post("/admin/api/idps/dev/scim-token",
                                     headers={"X-CSRF-Token": csrf})
        assert issued.status_code in (200, 201), issued.get_data(as_text=True)
        own_token = issued.get_json()["token"]
        reactivated = Scim(browser.client, own_token)("PATCH", f"/Users/{user_id}",
                                                      OKTA_REACTIVATE)
        assert reactivated.status_code == 200
        assert not login_refused(browser)  # alice is back in
    assert not still_admin, "a deactivated admin's session still works"


def test_a_sign_in_ticket_of_a_deactivated_admin_opens_no_session(
        app: Flask, browser: Browser, dev_idp: DevIdp, scim: Scim) -> None:
    ticket = _admin_ticket(browser, dev_idp)  # signed in at the IdP, not yet back here
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert scim("PATCH", f"/Users/{created.get_json()['id']}", OKTA_DEACTIVATE).status_code == 200

    claimed = browser.client.get(ticket)
    assert claimed.status_code == 303
    assert urlsplit(claimed.headers["Location"]).path == "/admin/login"
    assert browser.client.get("/admin/").status_code != 200
    assert browser.client.post("/admin/api/idps/dev/scim-token").status_code in (401, 403)
    with app.extensions["bridge"].db.transaction() as session:
        assert session.scalars(select(AdminSession)).all() == []


def test_an_admin_session_of_a_refused_person_does_not_authenticate(
        app: Flask, browser: Browser, dev_idp: DevIdp) -> None:
    """A session the deprovisioning did not see (written as it committed) is refused too."""
    _admin_sign_in(browser, dev_idp)
    services = app.extensions["bridge"]
    with services.db.transaction() as session:
        subject = session.scalars(select(AdminSession.subject)).one()
        session.add(DeprovisionedSubject(idp_slug="dev", subject=subject, source="event",
                                         reason="account_disabled", at=services.clock.now()))
    assert browser.client.get("/admin/").status_code != 200


def test_an_account_disabled_event_ends_the_admin_session(app: Flask, browser: Browser,
                                                          dev_idp: DevIdp) -> None:
    _admin_sign_in(browser, dev_idp)
    assert browser.client.get("/admin/").status_code == 200
    disabled = browser.client.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-disabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert disabled.status_code == 202
    assert browser.client.get("/admin/").status_code != 200
    with app.extensions["bridge"].db.transaction() as session:
        assert session.scalars(select(AdminSession)).all() == []
