"""An IdP managed through the admin API whose stored metadata or settings no longer load (valid
when saved, refused by a stricter check of a later version): no login goes through it, and its
admins see it with its problems and mend it, or delete it, rather than finding a 404."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from bridge import cli
from bridge.admin.access import AdminAccess
from bridge.config.settings import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from bridge.store.models import AuditEvent, IdpMetadataVersion, IdpRecord
from bridge.web import create_app
from tests.conftest import MovableClock
from tests.helpers import Browser
from tests.test_admin_api import _create, _login_at_acme, _new_keypair
from tests.test_idp_stages import Admin

# What an earlier version accepted and this one refuses: more attributes on an element than the
# parser's bound (decision 36).
TOO_MANY_ATTRIBUTES = " ".join(f"a{i}='x'" for i in range(70))


@pytest.fixture
def acme(session_other_idp: DevIdp) -> DevIdp:
    return session_other_idp


@pytest.fixture
def token(bridge: Services) -> str:
    return AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token(
        "tests", expires_in=3600, actor="test")[1]


@pytest.fixture
def node(settings: Settings) -> Iterator[Callable[[], Flask]]:
    """A node started after the stored IdP went bad (an upgrade): its registry loads it anew."""
    apps: list[Flask] = []

    def start() -> Flask:
        app = create_app(settings, clock=MovableClock())
        apps.append(app)
        return app
    yield start
    for app in apps:
        app.extensions["bridge"].db.dispose()


def _caller(client: FlaskClient, token: str):  # type: ignore[no-untyped-def]
    def call(method: str, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(path, method=method, headers=headers, **kwargs)
    return call


def _store_as_an_earlier_version_left_it(bridge: Services, *, xml: str | None = None,
                                         settings: dict[str, Any] | None = None) -> None:
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        if xml is not None:
            session.execute(update(IdpMetadataVersion).where(
                IdpMetadataVersion.id == record.version_id).values(xml=xml))
        if settings is not None:
            record.settings_json = json.dumps(settings)


def _bad_metadata(acme: DevIdp) -> str:
    return re.sub(r"<(\w+:)?IDPSSODescriptor", lambda m: f"{m.group(0)} {TOO_MANY_ATTRIBUTES}",
                  acme.metadata_xml().decode(), count=1)


def _unloadable(bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,  # type: ignore[no-untyped-def]
                **stored: Any) -> tuple[Flask, Any]:
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    _store_as_an_earlier_version_left_it(bridge, **stored)
    app = node()
    return app, _caller(app.test_client(), token)


def test_it_is_listed_and_shown_with_its_problems_and_serves_no_login(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        capsys: pytest.CaptureFixture[str]) -> None:
    app, api = _unloadable(bridge, client, token, acme, node, xml=_bad_metadata(acme))

    listed = {idp["slug"]: idp for idp in api("GET", "/admin/api/idps").get_json()["idps"]}
    assert listed["dev"]["served"] is True and listed["dev"]["load_problems"] is None
    shown = api("GET", "/admin/api/idps/other")
    assert shown.status_code == 200, shown.get_data(as_text=True)
    detail = shown.get_json()
    for view in (listed["other"], detail):
        assert view["served"] is False
        assert view["not_served_reason"] == "not_loadable"
        assert view["state"] == "live" and view["source"] == "api"
        assert view["entity_id"] is None and view["certificates"] == []
        assert any("too many attributes" in problem for problem in view["load_problems"])
    assert detail["version_id"] is not None
    assert [v["id"] for v in detail["versions"]] == [detail["version_id"]]
    assert api("GET", "/admin/api/idps/other/settings").get_json()["settings"] == {
        "display_name": "Acme"}
    state = api("GET", "/admin/api/idps/other/test-login").get_json()
    assert state["start_url"] is None and state["not_served_reason"] == "not_loadable"

    # No login goes through it on that node, and its SP metadata names no ACS for it.
    browser = Browser(app.test_client(), acme, app.extensions["bridge"])
    refused = browser.authorize(idp="other")
    assert refused.status_code == 302
    assert "error=invalid_request&error_description=Unknown+idp." in refused.headers["Location"]
    assert b"/saml/other/acs" not in app.test_client().get("/saml/metadata").data

    # The command line says so, with the problem.
    assert cli._idp_list(app.extensions["bridge"]) == 0  # `bridge idp list`
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("other "))
    assert "NOT SERVED" in line and "too many attributes" in line


def test_its_page_names_the_problems(bridge: Services, client: FlaskClient, token: str,  # type: ignore[no-untyped-def]
                                     acme: DevIdp, node) -> None:
    app, _ = _unloadable(bridge, client, token, acme, node, xml=_bad_metadata(acme))
    admin = Admin(app.test_client(), app.extensions["bridge"])
    listing = admin.page("/admin/")
    row = listing.xpath("//tr[.//a[contains(@href, '/admin/idps/other')]]")[0].text_content()
    assert "not served: its metadata in force or its settings no longer load" in row
    page = admin.page("/admin/idps/other")
    assert page.get_element_by_id("not-served").get("data-reason") == "not_loadable"
    assert "too many attributes" in page.get_element_by_id("load-problems").text_content()


def test_applying_a_version_that_loads_mends_it(bridge: Services, client: FlaskClient,  # type: ignore[no-untyped-def]
                                                token: str, acme: DevIdp, node) -> None:
    app, api = _unloadable(bridge, client, token, acme, node, xml=_bad_metadata(acme))
    proposed = api("POST", "/admin/api/idps/other/metadata", data=acme.metadata_xml(),
                   content_type="application/samlmetadata+xml")
    assert proposed.status_code == 200, proposed.get_data(as_text=True)
    body = proposed.get_json()
    # Nothing in force to compare with: an admin decides, whatever the policy.
    assert body["status"] == "pending"
    assert any("does not load" in reason for reason in body["diff"]["auto_apply_withheld"])
    applied = api("POST", f"/admin/api/idps/other/metadata/versions/{body['version']}/apply")
    assert applied.status_code == 200, applied.get_data(as_text=True)
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["served"] is True and detail["load_problems"] is None
    assert detail["entity_id"] == "https://other-idp.example.net/metadata"
    browser = Browser(app.test_client(), acme, app.extensions["bridge"])
    assert _login_at_acme(browser, acme).status_code == 302


def test_settings_that_load_mend_it(bridge: Services, client: FlaskClient, token: str,  # type: ignore[no-untyped-def]
                                    acme: DevIdp, node) -> None:
    app, api = _unloadable(bridge, client, token, acme, node,
                           settings={"display_name": "Acme", "clock_skew_seconds": "soon"})
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["not_served_reason"] == "not_loadable"
    assert any("clock_skew_seconds" in problem for problem in detail["load_problems"])
    saved = api("PUT", "/admin/api/idps/other/settings", json={"display_name": "Acme"})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.get_json()["served"] is True
    browser = Browser(app.test_client(), acme, app.extensions["bridge"])
    assert _login_at_acme(browser, acme).status_code == 302


def test_it_can_be_deleted_and_restored(bridge: Services, client: FlaskClient, token: str,  # type: ignore[no-untyped-def]
                                        acme: DevIdp, node) -> None:
    _, api = _unloadable(bridge, client, token, acme, node, xml=_bad_metadata(acme))
    deleted = api("DELETE", "/admin/api/idps/other?confirm_slug=other")
    assert deleted.status_code == 204, deleted.get_data(as_text=True)
    assert api("GET", "/admin/api/idps/other").status_code == 404
    assert "other" not in {idp["slug"] for idp in api("GET", "/admin/api/idps").get_json()["idps"]}
    with bridge.db.transaction() as session:
        events = list(session.scalars(select(AuditEvent.event).where(
            AuditEvent.idp_slug == "other")))
    assert "idp_deleted" in events


def test_an_idp_made_on_another_node_is_shown_at_once_not_as_unloadable(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node) -> None:
    """A node whose registry has not read the IdPs since another node made one does not call it
    unloadable: the admin views read them again first."""
    app = node()
    api = _caller(app.test_client(), token)
    assert api("GET", "/admin/api/idps").status_code == 200  # this node has read the IdPs
    assert _create(_caller(client, token), acme).status_code == 201  # made through the other
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["served"] is True and detail["not_served_reason"] is None
    listed = {idp["slug"]: idp for idp in api("GET", "/admin/api/idps").get_json()["idps"]}
    assert listed["other"]["served"] is True


# --- what an earlier version may have stored ------------------------------------------------------

@pytest.mark.parametrize("stored", [
    {"display_name": "Acme", "mapping": "okta"},
    {"display_name": "Acme", "mapping": ["okta"]},
    {"display_name": "Acme", "mapping": {"preset": ["okta"]}},
    {"display_name": {"text": "Acme"}},
], ids=["mapping-a-string", "mapping-a-list", "preset-a-list", "name-an-object"])
def test_settings_of_any_stored_shape_are_shown_and_mended_without_a_500(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        stored: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    app, api = _unloadable(bridge, client, token, acme, node, settings=stored)
    # The registry of that node still serves its other IdPs.
    assert "dev" in app.extensions["bridge"].idps
    for path in ("/admin/api/idps", "/admin/api/idps/other", "/admin/api/idps/other/settings",
                 "/admin/api/idps/other/test-login"):
        answer = api("GET", path)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True))
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["not_served_reason"] == "not_loadable" and detail["load_problems"]
    assert detail["display_name"] in ("Acme", "other") and detail["vendor"] is None
    admin = Admin(app.test_client(), app.extensions["bridge"])
    admin.page("/admin/")
    assert admin.page("/admin/idps/other").get_element_by_id("load-problems") is not None
    assert cli._idp_list(app.extensions["bridge"]) == 0
    assert "NOT SERVED" in capsys.readouterr().out
    # Its settings page saves settings that load, which mends it.
    saved = admin.post("/admin/idps/other/settings", settings_text='display_name = "Acme"')
    assert saved.status_code == 303, saved.get_data(as_text=True)
    assert api("GET", "/admin/api/idps/other").get_json()["served"] is True


def test_problem_text_is_markup_on_no_page_and_one_line_in_the_command_line(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A problem quotes a stored key: neither markup on the page, nor a line (or a terminal
    control sequence) of its own in `bridge idp list`."""
    key = "<script>x</script>\nforged   api   https://forged.example/metadata\x1b[2K"
    app, api = _unloadable(bridge, client, token, acme, node,
                           settings={"display_name": "Acme", key: 1})
    assert any("<script>" in p for p in api("GET", "/admin/api/idps/other").get_json()[
        "load_problems"])
    admin = Admin(app.test_client(), app.extensions["bridge"])
    page = admin.client.get("/admin/idps/other").get_data(as_text=True)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert cli._idp_list(app.extensions["bridge"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and not any(line.startswith("forged") for line in out.splitlines())
    assert "\\x1b[2K" in out


def test_many_long_problems_are_shown_cut(bridge: Services, client: FlaskClient, token: str,  # type: ignore[no-untyped-def]
                                          acme: DevIdp, node) -> None:
    stored = {"display_name": "Acme", **{f"k{i}" * 300: i for i in range(40)}}
    _, api = _unloadable(bridge, client, token, acme, node, settings=stored)
    problems = api("GET", "/admin/api/idps/other").get_json()["load_problems"]
    assert len(problems) == 11 and problems[-1] == "and 30 more (the log has them all)"
    assert all(len(problem) <= 501 for problem in problems)


def test_when_neither_metadata_nor_settings_load_they_are_mended_in_turn(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node) -> None:
    app, api = _unloadable(bridge, client, token, acme, node, xml=_bad_metadata(acme),
                           settings={"display_name": "Acme", "clock_skew_seconds": "soon"})
    # Metadata is checked with the settings in force, which do not load: refused.
    refused = api("POST", "/admin/api/idps/other/metadata", data=acme.metadata_xml(),
                  content_type="application/samlmetadata+xml")
    assert refused.status_code == 422, refused.get_data(as_text=True)
    # Settings are checked alone, since no settings make that metadata load; still refused when
    # they are wrong themselves.
    wrong = api("PUT", "/admin/api/idps/other/settings",
                json={"display_name": "Acme", "clock_skew_seconds": -1})
    assert wrong.status_code == 422, wrong.get_data(as_text=True)
    saved = api("PUT", "/admin/api/idps/other/settings", json={"display_name": "Acme"})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.get_json()["not_served_reason"] == "not_loadable"  # the metadata still fails
    proposed = api("POST", "/admin/api/idps/other/metadata", data=acme.metadata_xml(),
                   content_type="application/samlmetadata+xml")
    assert proposed.status_code == 200, proposed.get_data(as_text=True)
    version = proposed.get_json()["version"]
    assert api("POST", f"/admin/api/idps/other/metadata/versions/{version}/apply").status_code == 200
    assert api("GET", "/admin/api/idps/other").get_json()["served"] is True
    browser = Browser(app.test_client(), acme, app.extensions["bridge"])
    assert _login_at_acme(browser, acme).status_code == 302


def test_settings_are_checked_with_the_metadata_in_force_when_it_loads(
        client: FlaskClient, token: str, acme: DevIdp, tmp_path: Path) -> None:
    """Settings alone are checked only when the metadata in force loads with no settings at all:
    a pin that does not sign the metadata in force is refused as before."""
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    stranger = _new_keypair(tmp_path).cert_pem.decode()
    refused = api("PUT", "/admin/api/idps/other/settings",
                  json={"display_name": "Acme", "metadata_signing_certificate": stranger})
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert api("GET", "/admin/api/idps/other/settings").get_json()["settings"] == {
        "display_name": "Acme"}


def test_an_unexpected_error_loading_one_idp_leaves_the_others_served(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _create(_caller(client, token), acme).status_code == 201
    from bridge.idps import registry as registry_module
    loading = registry_module.load_managed_idp

    def failing(slug: str, *args: Any, **kwargs: Any) -> Any:
        if slug == "other":
            raise TypeError("a bug")
        return loading(slug, *args, **kwargs)
    monkeypatch.setattr(registry_module, "load_managed_idp", failing)
    app = node()
    assert "dev" in app.extensions["bridge"].idps
    detail = _caller(app.test_client(), token)("GET", "/admin/api/idps/other").get_json()
    assert detail["load_problems"] == [
        "its stored metadata or settings could not be read (TypeError; the log has the detail)"]


def test_a_record_whose_version_is_missing_is_shown_and_read_once(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app, api = _unloadable(bridge, client, token, acme, node)
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        record.version_id = 987654  # removed by hand, or a partial restore
        record.updated_at += 1
    app.extensions["bridge"].idps.invalidate()
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["not_served_reason"] == "not_loadable"
    assert detail["load_problems"] == [
        "its metadata version in force (987654) is missing, or is not one of its versions that "
        "was put in force; apply or restore another version"]
    # The views do not make the registry read the IdPs again on every request.
    from bridge.idps import registry as registry_module
    reloads: list[object] = []
    original = registry_module.IdpRegistry._reload_if_changed
    monkeypatch.setattr(registry_module.IdpRegistry, "_reload_if_changed",
                        lambda self: reloads.append(self) or original(self))
    for _ in range(3):
        assert api("GET", "/admin/api/idps").status_code == 200
        assert api("GET", "/admin/api/idps/other").status_code == 200
    assert reloads == []
    # Settings alone can be saved; deleting it works.
    assert api("PUT", "/admin/api/idps/other/settings",
               json={"display_name": "Acme"}).status_code == 200
    assert api("DELETE", "/admin/api/idps/other?confirm_slug=other").status_code == 204


def test_a_version_id_that_names_another_idps_version_serves_nothing(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node) -> None:
    """A record whose version is missing, when that id is later another IdP's version (SQLite
    reuses the largest id deleted; a partial restore resets a sequence): the other IdP's
    document, pending or not, is never served under this slug."""
    app, api = _unloadable(bridge, client, token, acme, node)
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        session.add(IdpMetadataVersion(
            slug="someone-else", xml=acme.metadata_xml().decode(), sha256="0" * 64,
            status="pending", source="upload", created_at=record.created_at,
            created_by="test", diff_json="{}"))
        session.flush()
        foreign = session.scalars(select(IdpMetadataVersion.id).where(
            IdpMetadataVersion.slug == "someone-else")).one()
        record.version_id, record.updated_at = foreign, record.updated_at + 1
    app.extensions["bridge"].idps.invalidate()
    detail = api("GET", "/admin/api/idps/other").get_json()
    assert detail["served"] is False and detail["not_served_reason"] == "not_loadable"
    assert "other" not in app.extensions["bridge"].idps
    assert b"/saml/other/acs" not in app.test_client().get("/saml/metadata").data


DEEP = "[" * 5000 + "]" * 5000  # JSON, but deeper than the decoder follows


@pytest.mark.parametrize("stored", ["[]", "null", '"x"', "1", "{", "", DEEP],
                         ids=["list", "null", "string", "number", "not-json", "empty", "deep"])
def test_stored_settings_that_are_not_an_object_are_shown_and_deleted(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node, stored: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    with bridge.db.transaction() as session:
        session.execute(update(IdpRecord).where(IdpRecord.slug == "other").values(
            settings_json=stored))
    app = node()
    api = _caller(app.test_client(), token)
    for path in ("/admin/api/idps", "/admin/api/idps/other", "/admin/api/idps/other/settings"):
        answer = api("GET", path)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True))
    assert api("GET", "/admin/api/idps/other").get_json()["not_served_reason"] == "not_loadable"
    # Without credentials too: the IdP's SP metadata.
    assert app.test_client().get("/saml/other/metadata").status_code == 200
    admin = Admin(app.test_client(), app.extensions["bridge"])
    admin.page("/admin/")
    admin.page("/admin/idps/other")
    assert cli._idp_list(app.extensions["bridge"]) == 0
    capsys.readouterr()
    # Metadata is checked with those settings: refused, naming them.
    refused = api("POST", "/admin/api/idps/other/metadata", data=acme.metadata_xml(),
                  content_type="application/samlmetadata+xml")
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert "must be a table of settings" in refused.get_data(as_text=True)
    assert api("DELETE", "/admin/api/idps/other?confirm_slug=other").status_code == 204
    deleted = api("GET", "/admin/api/deleted-idps").get_json()["idps"]
    assert [idp["display_name"] for idp in deleted if idp["slug"] == "other"] == ["other"]
    # It comes back with what it had: no settings (an empty value), or a value that does not
    # load, refused.
    restored = api("POST", "/admin/api/deleted-idps/other/restore")
    empty = stored in ("[]", "null", "")
    assert restored.status_code == (200 if empty else 422), restored.get_data(as_text=True)


@pytest.mark.parametrize("stored", ["[]", "{"])
def test_settings_that_load_mend_stored_settings_that_are_not_an_object(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        stored: str) -> None:
    api = _caller(client, token)
    assert _create(api, acme).status_code == 201
    with bridge.db.transaction() as session:
        session.execute(update(IdpRecord).where(IdpRecord.slug == "other").values(
            settings_json=stored))
    api = _caller(node().test_client(), token)
    saved = api("PUT", "/admin/api/idps/other/settings", json={"display_name": "Acme"})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.get_json()["served"] is True
    with bridge.db.transaction() as session:
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.event == "idp_settings_changed")).one()
    assert json.loads(event.detail_json)["before"] == json.loads(
        stored if stored != "{" else '"{"')


def test_a_version_id_that_names_one_of_its_own_pending_versions_serves_nothing(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node) -> None:
    """The version in force removed, and its id taken by a version proposed since (SQLite
    reuses the largest id deleted): a pending version is never served unapplied."""
    app, api = _unloadable(bridge, client, token, acme, node)
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, "other")
        assert record is not None
        session.add(IdpMetadataVersion(
            slug="other", xml=acme.metadata_xml().decode(), sha256="0" * 64, status="pending",
            source="upload", created_at=record.created_at, created_by="test", diff_json="{}"))
        session.flush()
        pending = session.scalars(select(IdpMetadataVersion.id).where(
            IdpMetadataVersion.status == "pending")).one()
        record.version_id, record.updated_at = pending, record.updated_at + 1
    app.extensions["bridge"].idps.invalidate()
    assert api("GET", "/admin/api/idps/other").get_json()["not_served_reason"] == "not_loadable"
    assert "other" not in app.extensions["bridge"].idps


@pytest.mark.parametrize("mapping", ["okta", {"claims": ["email"]}, {"claims": "email"},
                                     {"claims": {"email": "mail"}}])
def test_the_settings_form_on_a_mapping_it_cannot_show_answers_without_a_500(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str, acme: DevIdp, node,
        mapping: object) -> None:
    app, _ = _unloadable(bridge, client, token, acme, node,
                         settings={"display_name": "Acme", "mapping": mapping})
    admin = Admin(app.test_client(), app.extensions["bridge"])
    page = admin.page("/admin/idps/other")
    fingerprint = page.xpath("//input[@name='settings_fingerprint']/@value")[0]
    for path in ("/admin/idps/other/settings/common", "/admin/idps/other/settings/preview"):
        posted = admin.post(path, settings_fingerprint=fingerprint, display_name="Acme",
                            **{"from_email": "mail"})
        assert posted.status_code in (200, 303, 409, 422), (path, posted.get_data(as_text=True))


def test_a_deleted_draft_comes_back_only_with_settings_that_load(  # type: ignore[no-untyped-def]
        bridge: Services, client: FlaskClient, token: str) -> None:
    api = _caller(client, token)
    made = api("POST", "/admin/api/idp-drafts", json={"slug": "other",
                                                       "settings": {"display_name": "Acme"}})
    assert made.status_code == 201, made.get_data(as_text=True)
    with bridge.db.transaction() as session:
        session.execute(update(IdpRecord).where(IdpRecord.slug == "other").values(
            settings_json='"x"'))
    assert api("DELETE", "/admin/api/idps/other?confirm_slug=other").status_code == 204
    restored = api("POST", "/admin/api/deleted-idps/other/restore")
    assert restored.status_code == 422, restored.get_data(as_text=True)
    assert api("GET", "/admin/api/idps/other").status_code == 404
