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
from tests.test_idp_stages import SLUG, Admin, _events, _test_login

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


# --- "tested" means tested with the metadata and the settings in force ---------------------------

def _go_live_refused(admin: Admin) -> None:
    refused = admin.post(f"/admin/idps/{SLUG}/go-live")
    assert refused.status_code == 422 and b"no test login has passed" in refused.data
    assert admin.page(f"/admin/idps/{SLUG}").get_element_by_id("stage").get(
        "data-state") == "testing"


def _finish_test(admin: Admin, browser: Browser, idp: DevIdp, saml_request: str) -> str:
    answered = browser.post_acs(_answer(idp, saml_request, "bob"), SLUG, json=False)
    if answered.status_code not in (302, 303):
        return answered.get_data(as_text=True)
    return str(admin.page(urlsplit(answered.headers["Location"]).path)
               .get_element_by_id("test-outcome").text)


def test_settings_changed_after_a_passing_test_need_a_new_test(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    _test_login(admin, browser, session_other_idp)
    assert admin.page(f"/admin/idps/{SLUG}").get_element_by_id("go-live-button").get(
        "disabled") is None
    # Okta's mapping refuses this IdP's logins (tests/test_idp_stages.py): never tested.
    changed = admin.post(f"/admin/idps/{SLUG}/settings/common", preset="okta")
    assert changed.status_code == 303
    _go_live_refused(admin)
    assert admin.page(f"/admin/idps/{SLUG}").get_element_by_id("go-live-button").get(
        "disabled") is not None
    # A test with the settings now in force sees what they would do to users, and fails.
    assert "claims_attribute_invalid" in _test_login(
        admin, browser, session_other_idp).get_element_by_id("claims-v2").text
    _go_live_refused(admin)
    # Back to exactly the settings that passed: a test of them is on record.
    assert admin.post(f"/admin/idps/{SLUG}/settings/common",
                      preset="shibboleth").status_code == 303
    assert admin.post(f"/admin/idps/{SLUG}/go-live").status_code == 303
    [went_live] = _events(bridge, "idp_went_live")
    assert went_live["tested"] is True


def test_a_test_started_before_a_settings_change_does_not_count(
        admin: Admin, browser: Browser, session_other_idp: DevIdp) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    saml_request = _saml_request(admin.client.get(f"/admin/idps/{SLUG}/test-login"))
    assert admin.post(f"/admin/idps/{SLUG}/settings",
                      settings_text='display_name = "Contoso EU"\n[mapping]\n'
                                    'preset = "shibboleth"\n').status_code == 303
    assert "Accepted" in _finish_test(admin, browser, session_other_idp, saml_request)
    _go_live_refused(admin)


def test_a_test_started_before_a_delete_does_not_pass_the_restored_idp(
        admin: Admin, browser: Browser, session_other_idp: DevIdp) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    saml_request = _saml_request(admin.client.get(f"/admin/idps/{SLUG}/test-login"))
    _delete_and_restore(admin)
    assert "saml_request_unknown" in _finish_test(admin, browser, session_other_idp,
                                                  saml_request)
    _go_live_refused(admin)


def test_a_live_idp_stays_live_when_its_settings_change_and_says_they_are_untested(
        admin: Admin, browser: Browser, session_other_idp: DevIdp) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    _test_login(admin, browser, session_other_idp)
    assert admin.post(f"/admin/idps/{SLUG}/go-live").status_code == 303
    page = admin.page(f"/admin/idps/{SLUG}")
    assert not page.xpath("//*[@id='settings-untested' or @id='metadata-untested']")

    assert admin.post(f"/admin/idps/{SLUG}/settings/common",
                      clock_skew_seconds="120").status_code == 303
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.get_element_by_id("stage").get("data-state") == "live"
    assert "settings in force have not been through a test login" in page.get_element_by_id(
        "settings-untested").text
    assert not page.xpath("//*[@id='metadata-untested']")
    _test_login(admin, browser, session_other_idp)
    assert not admin.page(f"/admin/idps/{SLUG}").xpath("//*[@id='settings-untested']")


def _signed_in_through(other: Browser, idp: DevIdp) -> str:
    """An admin sign-in through the IdP up to its ticket (the ACS's answer), not yet exchanged."""
    saml_request = _saml_request(other.client.get(f"/admin/login/{SLUG}"))
    answered = other.post_acs(_answer(idp, saml_request), SLUG, json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    return parse_qs(urlsplit(answered.headers["Location"]).query)["ticket"][0]


def test_deleting_an_idp_ends_the_admin_sessions_signed_in_through_it(
        admin: Admin, app: Flask, session_other_idp: DevIdp, bridge: Services) -> None:
    """An admin signed in through an API-managed IdP holds a login that IdP vouched for: when
    the IdP is deleted (compromised, retired), that admin does not keep administering the bridge
    (restoring the IdP, among other things), nor does a sign-in through it not yet finished."""
    _live(admin, session_other_idp, ADMINS_RULE)
    signed_in = Browser(app.test_client(), session_other_idp, bridge)
    ticket = _signed_in_through(signed_in, session_other_idp)
    assert signed_in.client.get("/admin/callback", query_string={"ticket": ticket}).status_code in (
        302, 303)
    assert signed_in.client.get("/admin/").status_code == 200  # signed in through the IdP
    halfway = Browser(app.test_client(), session_other_idp, bridge)
    pending_ticket = _signed_in_through(halfway, session_other_idp)
    assert _admin_sessions(bridge) == 2  # the session and the ticket not yet exchanged

    assert admin.post(f"/admin/idps/{SLUG}/delete", confirm_slug=SLUG).status_code == 303

    assert signed_in.client.get("/admin/").status_code != 200
    assert signed_in.client.get("/admin/api/deleted-idps").status_code == 401
    assert signed_in.client.post(f"/admin/api/deleted-idps/{SLUG}/restore").status_code in (
        401, 403)
    halfway.client.get("/admin/callback", query_string={"ticket": pending_ticket})
    assert halfway.client.get("/admin/").status_code != 200
    assert _admin_sessions(bridge) == 0
    assert admin.client.get("/admin/").status_code == 200  # signed in through another IdP
    [deleted] = _events(bridge, "idp_deleted")
    assert deleted["admin_sessions_ended"] == 2
