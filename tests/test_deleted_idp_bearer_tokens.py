"""Deleting an IdP ends its logins: "nobody vouches for them any more". An access token of no
login (SAML bearer grant, RFC 7522) obtained through that IdP must end with it too: inactive at
/introspect, refused as a token exchange's subject token."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree

from bridge.admin.access import AdminAccess
from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.services import Services
from bridge.store.db import Database
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings
from tests.test_idp_stages import SLUG

TOKEN_URL = "https://bridge.example.com/token"
BACKEND = {**CONFIDENTIAL_CLIENT, "allow_saml_bearer": True,
           "token_exchange_audiences": ["downstream-api"]}
ASSERTION = "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, BACKEND])


@pytest.fixture
def api(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock).create_token("automation", expires_in=3600,
                                                              actor="test")[1]

    def call(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(path, method=method, headers=headers, **kwargs)
    return call


def _live_idp(api, idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    created = api("POST", "/admin/api/idp-drafts",
                  json={"slug": SLUG, "settings": {"display_name": "Contoso"}})
    assert created.status_code == 201, created.get_data(as_text=True)
    added = api("POST", f"/admin/api/idps/{SLUG}/metadata",
                json={"metadata_xml": idp.metadata_xml().decode()})
    assert added.status_code == 200, added.get_data(as_text=True)
    live = api("POST", f"/admin/api/idps/{SLUG}/go-live", json={"without_test": True})
    assert live.status_code == 200, live.get_data(as_text=True)


def _bearer_token(client: FlaskClient, idp: DevIdp, settings: Settings) -> str:
    response = base64.b64decode(idp.response_for(
        None, USERS["alice"], acs_url=TOKEN_URL, sp_entity_id=settings.sp_entity_id))
    assertion = etree.fromstring(response).find(f".//{ASSERTION}")
    encoded = base64.urlsafe_b64encode(etree.tostring(assertion)).rstrip(b"=").decode()
    granted = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:saml2-bearer", "assertion": encoded,
        "scope": "openid email"}, auth=("backend", CONFIDENTIAL_SECRET))
    assert granted.status_code == 200, granted.get_data(as_text=True)
    return str(granted.get_json()["access_token"])


def test_a_bearer_token_ends_with_the_deleted_idp(
        api, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings) -> None:
    _live_idp(api, session_other_idp)
    token = _bearer_token(client, session_other_idp, settings)
    assert client.post("/introspect", data={"token": token},
                       auth=("backend", CONFIDENTIAL_SECRET)).get_json()["active"] is True

    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204

    introspected = client.post("/introspect", data={"token": token},
                               auth=("backend", CONFIDENTIAL_SECRET)).get_json()
    exchanged = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "downstream-api"}, auth=("backend", CONFIDENTIAL_SECRET))
    assert (introspected["active"], exchanged.status_code) == (False, 400), \
        (introspected, exchanged.status_code)


def _active(client: FlaskClient, token: str) -> bool:
    return bool(client.post("/introspect", data={"token": token},
                            auth=("backend", CONFIDENTIAL_SECRET)).get_json()["active"])


def test_a_restored_idp_does_not_revive_a_bearer_token(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings) -> None:
    _live_idp(api, session_other_idp)
    token = _bearer_token(client, session_other_idp, settings)
    bridge.clock.advance(5)  # type: ignore[attr-defined]
    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    assert api("POST", f"/admin/api/deleted-idps/{SLUG}/restore").status_code == 200
    assert not _active(client, token)  # in testing
    assert api("POST", f"/admin/api/idps/{SLUG}/go-live",
               json={"without_test": True}).status_code == 200
    assert not _active(client, token)  # ended with the deletion, as the IdP's logins were
    fresh = _bearer_token(client, session_other_idp, settings)
    assert _active(client, fresh)

