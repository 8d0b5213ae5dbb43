"""The admin API does what the admin pages do with an IdP's stages, for automation: a draft, its
first metadata, the test-login state, going live (after a passing test, or explicitly without
one, audited), deleting (confirmed by the slug) and restoring a deleted IdP; with the admin API's
authentication and the stable codes of every refusal, each of which changes nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.services import Services
from bridge.store.models import AuditEvent, IdpRecord
from tests.helpers import Browser
from tests.test_idp_stages import SLUG, Admin, _refused_as_unknown, _user_login

TOKEN_ACTOR = "token:automation"


@pytest.fixture
def api(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("automation", expires_in=3600,
                                                              actor="test")[1]

    def call(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(path, method=method, headers=headers, **kwargs)
    return call


def _events(bridge: Services, name: str, slug: str = SLUG) -> list[dict]:
    with bridge.db.transaction() as session:
        return [json.loads(e.detail_json) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event == name, AuditEvent.idp_slug == slug)
            .order_by(AuditEvent.id))]


def _audit_count(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _state(api, slug: str = SLUG) -> str:  # type: ignore[no-untyped-def]
    return str(api("GET", f"/admin/api/idps/{slug}").get_json()["state"])


def _draft_with_metadata(api, idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    created = api("POST", "/admin/api/idp-drafts",
                  json={"slug": SLUG, "settings": {"display_name": "Contoso",
                                                   "mapping": {"preset": "shibboleth"}}})
    assert created.status_code == 201, created.get_data(as_text=True)
    added = api("POST", f"/admin/api/idps/{SLUG}/metadata",
                json={"metadata_xml": idp.metadata_xml().decode()})
    assert added.status_code == 200, added.get_data(as_text=True)
    assert added.get_json()["first"] is True


def _test_login_in_a_browser(client: FlaskClient, bridge: Services, browser: Browser,
                             idp: DevIdp) -> str:
    """What the admin does with the test-login state's ``start_url``: a SAML login in a browser
    signed in to the admin pages. Returns the test login's id."""
    admin = Admin(client, bridge)
    started = admin.client.get(f"/admin/idps/{SLUG}/test-login")
    assert started.status_code == 302, started.get_data(as_text=True)
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answered = browser.post_acs(idp.response_for(idp.parse_request(saml_request, None),
                                                 USERS["bob"]), SLUG, json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    client.delete_cookie("__Host-bridge-admin")
    return urlsplit(answered.headers["Location"]).path.rsplit("/", 1)[-1]


# --- authentication -----------------------------------------------------------------------------

NEW_ROUTES = [
    ("POST", "/admin/api/idp-drafts", {"slug": SLUG}),
    ("GET", f"/admin/api/idps/{SLUG}/test-login", None),
    ("POST", f"/admin/api/idps/{SLUG}/go-live", {"without_test": True}),
    ("DELETE", f"/admin/api/idps/{SLUG}?confirm_slug={SLUG}", None),
    ("GET", "/admin/api/deleted-idps", None),
    ("POST", f"/admin/api/deleted-idps/{SLUG}/restore", None),
]


@pytest.mark.parametrize("method,path,body", NEW_ROUTES)
def test_every_new_route_needs_an_admin(app: Flask, bridge: Services, api, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
                                        method: str, path: str, body: dict | None) -> None:
    _draft_with_metadata(api, session_other_idp)
    signed_in = app.test_client()
    Admin(signed_in, bridge)  # a valid admin session, used below without its CSRF token
    before = _audit_count(bridge)
    stranger = app.test_client()
    for headers in ({}, {"Authorization": "Bearer bat_not-a-token"}):
        refused = stranger.open(path, method=method, json=body, headers=headers)
        assert refused.status_code == 401, (path, refused.get_data(as_text=True))
        assert refused.get_json()["code"] == "admin_unauthorized"
    if method != "GET":
        forged = signed_in.open(path, method=method, json=body)
        assert forged.status_code == 403 and forged.get_json()["code"] == "admin_csrf_invalid"
    assert _audit_count(bridge) == before
    assert _state(api) == "testing"


# --- drafts -------------------------------------------------------------------------------------

def test_a_draft_through_the_api_then_its_metadata_puts_it_in_testing(
        api, bridge: Services, session_other_idp: DevIdp, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    created = api("POST", "/admin/api/idp-drafts",
                  json={"slug": SLUG, "settings": {"display_name": "Contoso"}})
    assert created.status_code == 201
    body = created.get_json()
    assert body["state"] == "draft" and body["entity_id"] is None
    assert body["acs_url"] == bridge.settings.acs_url(SLUG)
    assert api("GET", f"/admin/api/idps/{SLUG}/sp-metadata").status_code == 200
    state = api("GET", f"/admin/api/idps/{SLUG}/test-login").get_json()
    assert state["state"] == "draft" and state["tested"] is False and state["start_url"] is None
    assert _events(bridge, "idp_draft_created")[0]["actor"] == TOKEN_ACTOR

    added = api("POST", f"/admin/api/idps/{SLUG}/metadata",
                json={"metadata_xml": session_other_idp.metadata_xml().decode()})
    assert added.status_code == 200 and added.get_json()["first"] is True
    assert _state(api) == "testing"
    _refused_as_unknown(_user_login(browser, session_other_idp))  # not offered to users yet


@pytest.mark.parametrize("body,code,status", [
    ({"slug": "Not A Slug"}, "config_invalid", 422),
    ({"slug": SLUG, "settings": {"clock_skew_seconds": 9999}}, "config_invalid", 422),
    ({"slug": SLUG, "metadata_url": "https://idp.example.com/md"}, "config_invalid", 422),
    ({"slug": 7}, "config_invalid", 422),
    ({"slug": "dev"}, "config_invalid", 409),  # declared as a file
])
def test_a_refused_draft_creates_nothing(api, bridge: Services, body: dict, code: str,  # type: ignore[no-untyped-def]
                                         status: int) -> None:
    before = _audit_count(bridge)
    refused = api("POST", "/admin/api/idp-drafts", json=body)
    assert refused.status_code == status, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == code
    assert _audit_count(bridge) == before
    with bridge.db.transaction() as session:
        assert session.get(IdpRecord, SLUG) is None


def test_the_one_shot_create_is_unchanged(api, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    created = api("POST", "/admin/api/idps", json={
        "slug": SLUG, "metadata_xml": session_other_idp.metadata_xml().decode()})
    assert created.status_code == 201
    assert created.get_json()["entity_id"] == session_other_idp.entity_id


# --- test login and going live -------------------------------------------------------------------

def test_going_live_needs_a_passing_test_login_with_what_is_in_force(
        api, client: FlaskClient, bridge: Services, browser: Browser,  # type: ignore[no-untyped-def]
        session_other_idp: DevIdp) -> None:
    _draft_with_metadata(api, session_other_idp)
    state = api("GET", f"/admin/api/idps/{SLUG}/test-login").get_json()
    assert state["tested"] is False and state["version_id"] is not None
    assert state["start_url"] == f"{bridge.settings.base_url}/admin/idps/{SLUG}/test-login"

    early = api("POST", f"/admin/api/idps/{SLUG}/go-live")
    assert early.status_code == 409 and early.get_json()["code"] == "idp_untested"
    assert _state(api) == "testing" and _events(bridge, "idp_went_live") == []

    test_id = _test_login_in_a_browser(client, bridge, browser, session_other_idp)
    result = api("GET", f"/admin/api/test-logins/{test_id}")
    assert result.status_code == 200
    state = api("GET", f"/admin/api/idps/{SLUG}/test-login").get_json()
    assert state["tested"] is True and state["settings_tested"] is True
    assert state["tested_version_id"] == state["version_id"]

    # A settings change after the test: the fingerprint no longer matches, a new test is needed.
    current = api("GET", f"/admin/api/idps/{SLUG}").get_json()["settings"]
    assert api("PUT", f"/admin/api/idps/{SLUG}/settings",
               json={**current, "clock_skew_seconds": 90}).status_code == 200
    assert api("GET", f"/admin/api/idps/{SLUG}/test-login").get_json()["tested"] is False
    stale = api("POST", f"/admin/api/idps/{SLUG}/go-live", json={"without_test": False})
    assert stale.status_code == 409 and stale.get_json()["code"] == "idp_untested"
    assert _state(api) == "testing"

    _test_login_in_a_browser(client, bridge, browser, session_other_idp)
    live = api("POST", f"/admin/api/idps/{SLUG}/go-live")
    assert live.status_code == 200 and live.get_json()["state"] == "live"
    [went_live] = _events(bridge, "idp_went_live")
    assert went_live["tested"] is True and went_live["without_test"] is False
    assert went_live["actor"] == TOKEN_ACTOR
    signed_in = _user_login(browser, session_other_idp)
    assert signed_in.status_code == 302 and "code=" in signed_in.headers["Location"]

    again = api("POST", f"/admin/api/idps/{SLUG}/go-live")
    assert again.status_code == 409 and again.get_json()["code"] == "config_invalid"


def test_going_live_without_a_test_is_explicit_and_audited(
        api, bridge: Services, browser: Browser, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    _draft_with_metadata(api, session_other_idp)
    for body in ({"without_test": "yes"}, {"without_test": 1}, {"skip_test": True}, ["x"]):
        refused = api("POST", f"/admin/api/idps/{SLUG}/go-live", json=body)
        assert refused.status_code == 422 and refused.get_json()["code"] == "config_invalid"
    assert _state(api) == "testing" and _events(bridge, "idp_went_live") == []

    live = api("POST", f"/admin/api/idps/{SLUG}/go-live", json={"without_test": True})
    assert live.status_code == 200 and live.get_json()["state"] == "live"
    [went_live] = _events(bridge, "idp_went_live")
    assert went_live == {"actor": TOKEN_ACTOR, "version": went_live["version"],
                         "tested": False, "without_test": True}
    assert _user_login(browser, session_other_idp).status_code == 302


def test_a_draft_cannot_go_live_even_without_a_test(api, bridge: Services) -> None:  # type: ignore[no-untyped-def]
    assert api("POST", "/admin/api/idp-drafts", json={"slug": SLUG}).status_code == 201
    for body in ({}, {"without_test": True}):
        refused = api("POST", f"/admin/api/idps/{SLUG}/go-live", json=body)
        assert refused.status_code == 409 and refused.get_json()["code"] == "idp_untested"
    assert _state(api) == "draft" and _events(bridge, "idp_went_live") == []
    unknown = api("POST", "/admin/api/idps/nobody/go-live", json={"without_test": True})
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "idp_unknown"


# --- delete and restore --------------------------------------------------------------------------

def test_a_deletion_confirmed_by_another_slug_deletes_nothing_and_a_deleted_idp_comes_back(
        api, bridge: Services, browser: Browser, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    _draft_with_metadata(api, session_other_idp)
    api("POST", f"/admin/api/idps/{SLUG}/go-live", json={"without_test": True})

    for path, body in ((f"/admin/api/idps/{SLUG}?confirm_slug=", None),
                       (f"/admin/api/idps/{SLUG}?confirm_slug=othe", None),
                       (f"/admin/api/idps/{SLUG}?confirm_slug=dev", None),
                       (f"/admin/api/idps/{SLUG}", {"confirm_slug": "Other"}),
                       (f"/admin/api/idps/{SLUG}", {"confirm_slug": ["other"]})):
        kept = api("DELETE", path, json=body)
        assert kept.status_code == 422, kept.get_data(as_text=True)
        assert kept.get_json()["code"] == "idp_delete_unconfirmed"
        assert "nothing was deleted" in kept.get_json()["title"]
    assert _state(api) == "live" and _events(bridge, "idp_deleted") == []
    assert api("GET", "/admin/api/deleted-idps").get_json() == {"idps": []}
    assert _user_login(browser, session_other_idp).status_code == 302

    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    assert api("GET", f"/admin/api/idps/{SLUG}").status_code == 404
    [deleted] = api("GET", "/admin/api/deleted-idps").get_json()["idps"]
    assert deleted["slug"] == SLUG and deleted["deleted_by"] == TOKEN_ACTOR
    assert deleted["display_name"] == "Contoso"

    restored = api("POST", f"/admin/api/deleted-idps/{SLUG}/restore")
    assert restored.status_code == 200, restored.get_data(as_text=True)
    assert restored.get_json()["state"] == "testing"
    assert restored.get_json()["entity_id"] == session_other_idp.entity_id
    assert api("GET", "/admin/api/deleted-idps").get_json() == {"idps": []}
    assert _events(bridge, "idp_restored")[0]["actor"] == TOKEN_ACTOR
    _refused_as_unknown(_user_login(browser, session_other_idp))  # in testing, not offered


def test_restoring_what_is_not_deleted_is_refused(api, bridge: Services,  # type: ignore[no-untyped-def]
                                                  session_other_idp: DevIdp) -> None:
    _draft_with_metadata(api, session_other_idp)
    before = _audit_count(bridge)
    for slug in (SLUG, "nobody", "dev", "Bad%20Slug"):
        refused = api("POST", f"/admin/api/deleted-idps/{slug}/restore")
        assert refused.status_code == 404, (slug, refused.get_data(as_text=True))
        assert refused.get_json()["code"] == "idp_unknown"
    assert _audit_count(bridge) == before and _state(api) == "testing"
    # Deleting an unknown IdP is a 404 whatever the confirmation says.
    unknown = api("DELETE", "/admin/api/idps/nobody?confirm_slug=nobody")
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "idp_unknown"


def test_restoring_when_another_idp_now_holds_the_entity_id_is_refused(
        api, bridge: Services, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    _draft_with_metadata(api, session_other_idp)
    assert api("DELETE", f"/admin/api/idps/{SLUG}?confirm_slug={SLUG}").status_code == 204
    # The same IdP onboarded again under another slug: it holds the entity ID now.
    again = api("POST", "/admin/api/idps", json={
        "slug": "contoso", "metadata_xml": session_other_idp.metadata_xml().decode()})
    assert again.status_code == 201, again.get_data(as_text=True)
    before = _audit_count(bridge)

    refused = api("POST", f"/admin/api/deleted-idps/{SLUG}/restore")
    assert refused.status_code == 409 and refused.get_json()["code"] == "idp_entity_id_in_use"
    assert "contoso" in refused.get_json()["title"]
    assert _audit_count(bridge) == before
    assert api("GET", f"/admin/api/idps/{SLUG}").status_code == 404
    assert [d["slug"] for d in api("GET", "/admin/api/deleted-idps").get_json()["idps"]] == [SLUG]
    assert api("GET", "/admin/api/idps/contoso").get_json()["entity_id"] == \
        session_other_idp.entity_id


# --- deletion: the confirmation given, and two at once ---------------------------------------------

@pytest.mark.parametrize("confirmation", [None, "", 0, False, {}, [SLUG]])
def test_a_confirmation_that_names_no_idp_deletes_nothing(  # type: ignore[no-untyped-def]
        api, bridge: Services, session_other_idp: DevIdp, confirmation: object) -> None:
    """A script whose confirmation variable came out empty sends {"confirm_slug": null}: the
    confirmation was given, and names no IdP."""
    _draft_with_metadata(api, session_other_idp)
    answered = api("DELETE", f"/admin/api/idps/{SLUG}", json={"confirm_slug": confirmation})
    assert answered.status_code == 422, answered.get_data(as_text=True)
    assert answered.get_json()["code"] == "idp_delete_unconfirmed"
    with bridge.db.transaction() as session:
        assert session.get(IdpRecord, SLUG) is not None
    assert _events(bridge, "idp_deleted") == []


@pytest.mark.parametrize("body", [None, {}, {"other": 1}])
def test_a_deletion_without_a_confirmation_still_deletes(  # type: ignore[no-untyped-def]
        api, bridge: Services, session_other_idp: DevIdp, body: dict | None) -> None:
    _draft_with_metadata(api, session_other_idp)
    assert api("DELETE", f"/admin/api/idps/{SLUG}", json=body).status_code == 204
    assert len(_events(bridge, "idp_deleted")) == 1


def _at_once(calls: list[Callable[[], int]]) -> list[int]:
    barrier = threading.Barrier(len(calls))
    results: list[int] = [0] * len(calls)

    def run(index: int, call: Callable[[], int]) -> None:
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


def test_two_deletions_at_once_delete_once(api, app: Flask, bridge: Services,  # type: ignore[no-untyped-def]
                                           session_other_idp: DevIdp) -> None:
    """Two deletions of one IdP at once: one deletes it (204, one idp_deleted event), the other
    finds it gone (404); never a 500, never a second deletion event."""
    _draft_with_metadata(api, session_other_idp)
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("parallel", expires_in=3600,
                                                               actor="test")[1]

    def delete() -> int:
        return app.test_client().delete(f"/admin/api/idps/{SLUG}",
                                        headers={"Authorization": f"Bearer {token}"}).status_code

    outcomes = []
    for _ in range(20):
        before = len(_events(bridge, "idp_deleted"))
        outcomes.append((_at_once([delete, delete]), len(_events(bridge, "idp_deleted")) - before))
        assert api("POST", f"/admin/api/deleted-idps/{SLUG}/restore").status_code == 200
    assert all(statuses == [204, 404] and events == 1 for statuses, events in outcomes), outcomes
