"""Strings that are not Unicode text: JSON's escapes can name a lone surrogate ("\\ud800"), which
no character is and no UTF-8 encoder accepts. Every JSON body the bridge reads refuses one with
its usual invalid-input answer, naming where it is, and changes nothing; no IdP setting holds one,
from the admin API, the settings page or a file; and what was stored before still renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bridge.dev.saml_idp import DevIdp
from bridge.errors import ConfigError
from bridge.idps.files import load_idp_settings
from bridge.idps.settings import parse_idp_settings
from bridge.services import Services
from bridge.store.models import AuditEvent, ClientRecord, IdpRecord
from tests.test_admin_api_stages import SLUG, _draft_with_metadata, api  # noqa: F401
from tests.test_idp_stages import Admin

LONE_SURROGATE = "Contoso \ud800"
AUTHORIZE = {"response_type": "code", "client_id": "demo",
             "redirect_uri": "http://127.0.0.1:8002/callback", "state": "s",
             "code_challenge": "x" * 43, "code_challenge_method": "S256", "scope": "openid"}
NOT_TEXT = "not valid Unicode text"


def _audit_count(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@pytest.mark.parametrize("given,where", [
    ({"display_name": LONE_SURROGATE}, "body.settings.display_name"),
    ({"display_name": "\udfff"}, "body.settings.display_name"),
    ({"email_domains": ["example.com", "\ud83d.example"]}, "body.settings.email_domains[1]"),
    ({"mapping": {"claims": {"\udc80name": "x"}}}, "body.settings.mapping.claims.'\\udc80name'"),
])
def test_a_draft_with_a_string_that_is_not_text_is_refused(  # type: ignore[no-untyped-def]
        api, app: Flask, bridge: Services, given: dict, where: str) -> None:  # noqa: F811
    before = _audit_count(bridge)
    created = api("POST", "/admin/api/idp-drafts", json={"slug": SLUG, "settings": given})
    assert created.status_code == 422, created.get_data(as_text=True)
    assert created.get_json()["code"] == "config_invalid"
    assert f"{where}: {NOT_TEXT}" in created.get_json()["title"], created.get_json()
    with bridge.db.transaction() as session:
        assert session.get(IdpRecord, SLUG) is None
    assert _audit_count(bridge) == before
    # Nothing was stored, so every page still renders.
    pages = app.test_client()
    Admin(pages, bridge)
    for path in ("/admin/", "/admin/login"):
        assert pages.get(path).status_code == 200, path


def test_a_live_idp_keeps_its_name_when_a_new_one_is_not_text(  # type: ignore[no-untyped-def]
        api, client: FlaskClient, bridge: Services, session_other_idp: DevIdp) -> None:  # noqa: F811
    """Settings changed through the admin API: the refused change leaves the IdP as it was, and
    the IdP chooser of /authorize and the admin sign-in page keep rendering it."""
    _draft_with_metadata(api, session_other_idp)
    assert api("POST", f"/admin/api/idps/{SLUG}/go-live",
               json={"without_test": True}).status_code == 200
    changed = api("PUT", f"/admin/api/idps/{SLUG}/settings",
                  json={"display_name": LONE_SURROGATE, "mapping": {"preset": "shibboleth"}})
    assert changed.status_code == 422 and NOT_TEXT in changed.get_json()["title"]
    assert api("GET", f"/admin/api/idps/{SLUG}").get_json()["display_name"] == "Contoso"
    # Two IdPs are offered (the file IdP "dev" and this one): users choose on a page.
    chooser = client.get("/authorize", query_string=AUTHORIZE)
    assert chooser.status_code == 200 and "Contoso" in chooser.get_data(as_text=True)
    assert client.get("/admin/login").status_code == 200


def test_the_settings_page_refuses_settings_text_that_is_not_text(
        api, app: Flask, bridge: Services, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _draft_with_metadata(api, session_other_idp)
    admin = Admin(app.test_client(), bridge)
    saved = admin.post(f"/admin/idps/{SLUG}/settings",
                       settings_text='{"display_name": "Contoso \\ud800"}')
    assert 400 <= saved.status_code < 500, saved.status_code
    assert api("GET", f"/admin/api/idps/{SLUG}").get_json()["display_name"] == "Contoso"
    assert admin.client.get(f"/admin/idps/{SLUG}").status_code == 200


def test_a_client_whose_name_is_not_text_is_refused(  # type: ignore[no-untyped-def]
        api, bridge: Services) -> None:  # noqa: F811
    with bridge.db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(ClientRecord))
    created = api("POST", "/admin/api/clients", json={
        "client_id": "scripted", "client_name": "Portal \ud800",
        "redirect_uris": ["https://portal.example.com/cb"]})
    assert created.status_code == 422 and NOT_TEXT in created.get_json()["title"]
    with bridge.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ClientRecord)) == before


def test_settings_from_a_file_or_json_text_refuse_what_is_not_text(tmp_path: Path) -> None:
    escaped = tmp_path / "escaped.toml"
    escaped.write_text('display_name = "Contoso \\ud800"\n')
    encoded = tmp_path / "encoded.toml"  # the surrogate's bytes as CESU-8 writes them
    encoded.write_bytes(b'display_name = "Contoso \xed\xa0\x80"\n')
    for toml_file in (escaped, encoded):
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_idp_settings(toml_file)
    with pytest.raises(ConfigError) as caught:
        parse_idp_settings(json.loads('{"display_name": "Contoso \\ud800"}'), source="idp x.toml")
    assert caught.value.problems == [f"idp x.toml: display_name: {NOT_TEXT} (a lone surrogate "
                                     "such as \\ud800, which no character is)"]
    with pytest.raises(ConfigError):
        parse_idp_settings({"security_events": {"issuer": "\ud800"}}, source="idp x.toml")


def test_a_draft_stored_with_such_a_name_still_renders(
        api, app: Flask, bridge: Services) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A name stored before such strings were refused (the settings are stored as ASCII JSON,
    escapes included) is shown with U+FFFD in its place, never a 500."""
    assert api("POST", "/admin/api/idp-drafts",
               json={"slug": SLUG, "settings": {"display_name": "Contoso"}}).status_code == 201
    with bridge.db.transaction() as session:
        row = session.get(IdpRecord, SLUG)
        assert row is not None
        row.settings_json = json.dumps({"display_name": LONE_SURROGATE})
    pages = app.test_client()
    Admin(pages, bridge)
    for path in ("/admin/", f"/admin/idps/{SLUG}"):
        page = pages.get(path)
        assert page.status_code == 200, (path, page.status_code)
        assert "Contoso \ufffd" in page.get_data(as_text=True), path
    assert api("GET", f"/admin/api/idps/{SLUG}").status_code == 200
