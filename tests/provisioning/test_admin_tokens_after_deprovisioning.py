"""docs/deprovisioning.md: a deactivated admin "is signed out, and cannot sign in to the admin
pages again"; deprovision() ends the admin session because "a deactivated admin must not keep the
pages (and with them a SCIM token to undo this)". An admin API token the admin made from that
session (or from such a token) is the same power: it ends with the deprovisioning, and with the
IdP the admin signed in through. A token of the command line belongs to nobody and stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html
from sqlalchemy import select

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import DevIdp
from bridge.store.models import AdminSession, AdminToken, DeprovisionedSubject, ProvisioningToken
from tests.conftest import test_sp_metadata
from tests.helpers import Browser, live_api_idp
from tests.provisioning.conftest import (  # noqa: F401
    ALICE_NAME_ID,
    Scim,
    idp_settings,
    login_refused,
    scim,
    scim_user_key,
    settings,
)
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, OKTA_REACTIVATE, okta_user
from tests.provisioning.test_admin_session_after_deprovisioning import _admin_sign_in
from tests.provisioning.transmitter import RISC, Transmitter, user

TRANSMITTER = Transmitter()
SLUG = "contoso"  # an IdP of the admin API


@pytest.fixture
def idp_settings() -> str:  # noqa: F811
    return TRANSMITTER.settings_toml()


def _token_of_the_session(browser: Browser) -> str:
    page = browser.client.get("/admin/")
    csrf = html.fromstring(page.get_data(as_text=True)).xpath(
        "//input[@name='csrf_token']/@value")[0]
    made = browser.client.post("/admin/api/tokens", json={"name": "mine", "expires_in": 86400},
                               headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.get_data(as_text=True)
    return str(made.get_json()["token"])


def _with(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _scim_tokens(app: Flask) -> int:
    with app.extensions["bridge"].db.transaction() as session:
        return len(session.scalars(select(ProvisioningToken)).all())


def _refused(client: FlaskClient, token: str) -> None:
    answer = client.post("/admin/api/idps/dev/scim-token", headers=_with(token))
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert answer.get_json()["code"] == "admin_unauthorized"


def test_an_admin_token_made_by_a_deactivated_admin_stops_working(
        app: Flask, browser: Browser, dev_idp: DevIdp, scim: Scim) -> None:  # noqa: F811
    _admin_sign_in(browser, dev_idp)
    admin_token = _token_of_the_session(browser)

    user_id = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    assert scim("PATCH", f"/Users/{user_id}", OKTA_DEACTIVATE).status_code == 200
    assert login_refused(browser)
    assert browser.client.get("/admin/").status_code != 200  # the session ended

    other = app.test_client()
    scim_tokens = _scim_tokens(app)
    issued = other.post("/admin/api/idps/dev/scim-token", headers=_with(admin_token))
    if issued.status_code in (200, 201):
        # The deactivated admin undoes the deactivation with a SCIM token of their own.
        own = Scim(other, issued.get_json()["token"])
        assert own("PATCH", f"/Users/{user_id}", OKTA_REACTIVATE).status_code == 200
        assert not login_refused(browser)
    assert issued.status_code == 401, "an admin token of a deactivated admin still works"
    assert issued.get_json()["code"] == "admin_unauthorized"
    assert _scim_tokens(app) == scim_tokens  # nothing issued
    with app.extensions["bridge"].db.transaction() as session:
        token = session.scalars(select(AdminToken)).one()
        assert token.revoked_at is not None  # revoked with the deactivation, not only refused
    # Reactivated, the admin signs in again; the token stays revoked.
    assert scim("PATCH", f"/Users/{user_id}", OKTA_REACTIVATE).status_code == 200
    _refused(other, admin_token)


def test_an_account_disabled_event_ends_the_admins_tokens_and_the_tokens_they_made(
        app: Flask, browser: Browser, dev_idp: DevIdp) -> None:
    _admin_sign_in(browser, dev_idp)
    first = _token_of_the_session(browser)
    other = app.test_client()
    # A token made with that token is the same person's power.
    made = other.post("/admin/api/tokens", json={"name": "second", "expires_in": 3600},
                      headers=_with(first))
    assert made.status_code == 201, made.get_data(as_text=True)
    second = made.get_json()["token"]
    listed = other.get("/admin/api/tokens", headers=_with(second)).get_json()["tokens"]
    assert {t["name"]: t["owner"] for t in listed}["second"] == \
        {t["name"]: t["owner"] for t in listed}["mine"] != None  # noqa: E711

    disabled = other.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-disabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert disabled.status_code == 202
    scim_tokens = _scim_tokens(app)
    _refused(other, first)
    _refused(other, second)
    assert _scim_tokens(app) == scim_tokens


def test_a_command_line_token_belongs_to_nobody_and_stays(
        app: Flask, browser: Browser, dev_idp: DevIdp) -> None:
    services = app.extensions["bridge"]
    cli = AdminAccess(services.db, services.clock, services.idps).create_token(
        "automation", expires_in=3600, actor="cli:ops")[1]
    other = app.test_client()
    made = other.post("/admin/api/tokens", json={"name": "child", "expires_in": 3600},
                      headers=_with(cli))
    assert made.status_code == 201
    child = made.get_json()["token"]
    _admin_sign_in(browser, dev_idp)
    with services.db.transaction() as session:
        subject = session.scalars(select(AdminSession.subject)).one()
    disabled = other.post("/events/dev", data=TRANSMITTER.set(
        {RISC + "account-disabled": {}}, sub_id=user(ALICE_NAME_ID)),
        headers={"Content-Type": "application/secevent+jwt"})
    assert disabled.status_code == 202
    with services.db.transaction() as session:
        assert session.get(DeprovisionedSubject, ("dev", subject)) is not None
    for token in (cli, child):
        assert other.get("/admin/api/tokens", headers=_with(token)).status_code == 200


def test_a_token_of_a_refused_owner_does_not_authenticate(
        app: Flask, browser: Browser, dev_idp: DevIdp) -> None:
    """A token the deprovisioning did not see (made as it committed) is refused too."""
    _admin_sign_in(browser, dev_idp)
    token = _token_of_the_session(browser)
    services = app.extensions["bridge"]
    with services.db.transaction() as session:
        subject = session.scalars(select(AdminSession.subject)).one()
        session.add(DeprovisionedSubject(idp_slug="dev", subject=subject, source="event",
                                         reason="account_disabled", at=services.clock.now()))
    _refused(app.test_client(), token)


def test_deleting_an_idp_revokes_the_tokens_its_people_made(app: Flask, tmp_path: Path) -> None:
    contoso = DevIdp(base_url="https://contoso.example.net", state_dir=tmp_path / "contoso",
                     sp_metadata=test_sp_metadata)
    services = app.extensions["bridge"]
    access = AdminAccess(services.db, services.clock, services.idps)
    cli = access.create_token("automation", expires_in=3600, actor="cli:ops")[1]
    elsewhere = access.create_token("elsewhere", expires_in=3600, actor="user:sub-x (X)",
                                    owner=("dev", "sub-x"))[1]
    client = app.test_client()
    live_api_idp(lambda method, path, **kwargs: client.open(
        path, method=method, headers=_with(cli), **kwargs), contoso, SLUG)
    # Made by a person of the new IdP (a token can only be made by someone signed in through it).
    theirs = access.create_token("theirs", expires_in=3600, actor="user:sub-x (X)",
                                 owner=(SLUG, "sub-x"))[1]
    assert client.get("/admin/api/tokens", headers=_with(theirs)).status_code == 200
    assert client.delete(f"/admin/api/idps/{SLUG}", headers=_with(cli),
                         json={"confirm_slug": SLUG}).status_code == 204
    _refused(client, theirs)
    for token in (cli, elsewhere):
        assert client.get("/admin/api/tokens", headers=_with(token)).status_code == 200
