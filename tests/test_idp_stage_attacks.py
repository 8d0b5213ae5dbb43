"""The stages of an API-managed IdP from the attacker's side: a login started while the IdP was
offered must not finish once it is deleted and restored into testing, only an admin's test login
completes through an IdP in testing, and "tested" means tested with what is in force now."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from bridge.dev.saml_idp import USERS, DevIdp
from bridge.services import Services
from bridge.store.models import AdminSession, IdpRecord
from tests.helpers import Browser
from tests.test_idp_stages import SLUG, Admin, _events

ADMINS_RULE = ('display_name = "Contoso"\n[[mapping.roles]]\nexact = "bridge-admins"\n'
               'role = "bridge-admin"\n')


@pytest.fixture
def admin(client: FlaskClient, bridge: Services) -> Admin:
    return Admin(client, bridge)


def _live(admin: Admin, idp: DevIdp, settings_text: str | None = None) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(idp)
    if settings_text is not None:
        saved = admin.post(f"/admin/idps/{SLUG}/settings", settings_text=settings_text)
        assert saved.status_code == 303, saved.get_data(as_text=True)
    assert admin.post(f"/admin/idps/{SLUG}/go-live", without_test="yes").status_code == 303


def _saml_request(started) -> str:  # type: ignore[no-untyped-def]
    assert started.status_code == 302, started.get_data(as_text=True)
    return parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]


def _delete_and_restore(admin: Admin) -> None:
    assert admin.post(f"/admin/idps/{SLUG}/delete", confirm_slug=SLUG).status_code == 303
    assert admin.post(f"/admin/deleted/{SLUG}/restore").status_code == 303
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.get_element_by_id("stage").get("data-state") == "testing"


def _answer(idp: DevIdp, saml_request: str, user: str = "alice") -> str:
    return idp.response_for(idp.parse_request(saml_request, None), USERS[user])


def _put_in_testing(bridge: Services) -> None:
    """The IdP is in testing while a login asked of it is outstanding: what a node whose view was
    a moment old could still start between a deletion and a restore."""
    with bridge.db.transaction() as session:
        session.execute(update(IdpRecord).where(IdpRecord.slug == SLUG).values(
            state="testing", updated_at=IdpRecord.updated_at + 1))
    bridge.idps.invalidate()


def _admin_sessions(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return session.query(AdminSession).filter_by(idp_slug=SLUG).count()


def test_a_user_login_started_before_a_delete_does_not_finish_after_the_restore(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    _live(admin, session_other_idp)
    saml_request = _saml_request(browser.authorize(idp=SLUG))
    _delete_and_restore(admin)
    [deleted] = _events(bridge, "idp_deleted")
    assert deleted["requests_ended"] == 1

    answered = browser.post_acs(_answer(session_other_idp, saml_request), SLUG)
    assert answered.status_code == 400, answered.get_data(as_text=True)
    assert answered.json["code"] == "saml_request_unknown"  # ended with the deletion
    assert browser.issued_nothing()


def test_a_user_login_does_not_finish_through_an_idp_in_testing(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    _live(admin, session_other_idp)
    saml_request = _saml_request(browser.authorize(idp=SLUG))
    _put_in_testing(bridge)

    answered = browser.post_acs(_answer(session_other_idp, saml_request), SLUG)
    assert answered.status_code == 400, answered.get_data(as_text=True)
    assert answered.json["code"] == "idp_not_live"
    assert "code=" not in answered.headers.get("Location", "")
    assert browser.issued_nothing()
    refused = browser.last_audit()
    assert (refused.event, refused.outcome) == ("login", "refused")


def test_an_admin_sign_in_started_before_a_delete_does_not_finish_after_the_restore(
        admin: Admin, app: Flask, session_other_idp: DevIdp, bridge: Services) -> None:
    _live(admin, session_other_idp, ADMINS_RULE)
    other = Browser(app.test_client(), session_other_idp, bridge)
    saml_request = _saml_request(other.client.get(f"/admin/login/{SLUG}"))
    _delete_and_restore(admin)

    answered = other.post_acs(_answer(session_other_idp, saml_request), SLUG)
    assert answered.status_code == 400 and answered.json["code"] == "saml_request_unknown"
    assert _admin_sessions(bridge) == 0
    assert other.client.get("/admin/").status_code != 200


def test_an_admin_sign_in_does_not_finish_through_an_idp_in_testing(
        admin: Admin, app: Flask, session_other_idp: DevIdp, bridge: Services) -> None:
    _live(admin, session_other_idp, ADMINS_RULE)
    other = Browser(app.test_client(), session_other_idp, bridge)
    saml_request = _saml_request(other.client.get(f"/admin/login/{SLUG}"))
    _put_in_testing(bridge)

    answered = other.post_acs(_answer(session_other_idp, saml_request), SLUG, json=False)
    assert answered.status_code == 400 and b"idp_not_live" in answered.data
    assert _admin_sessions(bridge) == 0
    assert other.client.get("/admin/").status_code != 200


def test_an_admins_test_login_still_completes_through_an_idp_in_testing(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    """The control of the two above: the same IdP in testing, an admin's test login of it."""
    _live(admin, session_other_idp)
    _put_in_testing(bridge)
    saml_request = _saml_request(admin.client.get(f"/admin/idps/{SLUG}/test-login"))
    answered = browser.post_acs(_answer(session_other_idp, saml_request, "bob"), SLUG, json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    result = admin.page(urlsplit(answered.headers["Location"]).path)
    assert "Accepted" in result.get_element_by_id("test-outcome").text
