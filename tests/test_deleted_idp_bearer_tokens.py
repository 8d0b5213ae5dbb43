"""Deleting an IdP ends its logins: "nobody vouches for them any more". An access token of no
login (SAML bearer grant, RFC 7522) obtained through that IdP must end with it too: inactive at
/introspect, refused as a token exchange's subject token."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.admin.access import AdminAccess
from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from bridge.store.db import Database
from bridge.web import create_app
from tests.bearer_tools import BACKEND, active, bearer_token, introspected_and_exchanged
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import live_api_idp
from tests.test_idp_stages import SLUG


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, BACKEND])


@pytest.fixture
def api(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("automation", expires_in=3600,
                                                              actor="test")[1]

    def call(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(path, method=method, headers=headers, **kwargs)
    return call


def test_a_bearer_token_ends_with_the_deleted_idp(
        api, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings) -> None:
    live_api_idp(api, session_other_idp, SLUG)
    token = bearer_token(client, session_other_idp, settings)
    assert active(client, token)

    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204

    assert introspected_and_exchanged(client, token) == (False, 400)


def test_a_restored_idp_does_not_revive_abearer_token(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings) -> None:
    live_api_idp(api, session_other_idp, SLUG)
    token = bearer_token(client, session_other_idp, settings)
    bridge.clock.advance(5)  # type: ignore[attr-defined]
    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    assert api("POST", f"/admin/api/deleted-idps/{SLUG}/restore").status_code == 200
    assert not active(client, token)  # in testing
    assert api("POST", f"/admin/api/idps/{SLUG}/go-live",
               json={"without_test": True}).status_code == 200
    assert not active(client, token)  # ended with the deletion, as the IdP's logins were
    fresh = bearer_token(client, session_other_idp, settings)
    assert active(client, fresh)



def test_an_idp_deleted_and_restored_within_a_second_does_not_revive_a_bearer_token(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """iat is whole seconds: the token must carry when, within its second, it was issued, or a
    deletion and restore in that same second would bring it back."""
    second = float(int(bridge.clock.now()) + 10)
    instant = [second + 0.2]
    monkeypatch.setattr(bridge.clock, "now", lambda: instant[0])
    live_api_idp(api, session_other_idp, SLUG)
    token = bearer_token(client, session_other_idp, settings)
    assert active(client, token)
    instant[0] = second + 0.5
    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    assert api("POST", f"/admin/api/deleted-idps/{SLUG}/restore").status_code == 200
    assert api("POST", f"/admin/api/idps/{SLUG}/go-live",
               json={"without_test": True}).status_code == 200
    assert not active(client, token)
    instant[0] = second + 0.6  # issued after the restore, in the same second: it stands
    assert active(client, bearer_token(client, session_other_idp, settings))


def test_a_file_idp_put_under_a_deleted_idps_slug_does_not_revive_its_bearer_token(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, idp_dir: Path) -> None:
    """The operator declares an IdP in idp_metadata/ under the slug an IdP of the admin API
    had, and restarts: what the deleted IdP vouched for stays ended; what the file's IdP
    vouches for from then on stands."""
    live_api_idp(api, session_other_idp, SLUG)
    token = bearer_token(client, session_other_idp, settings)
    bridge.clock.advance(5)  # type: ignore[attr-defined]
    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    bridge.clock.advance(5)  # type: ignore[attr-defined]

    session_other_idp.write_metadata(idp_dir, slug=SLUG)
    restarted = create_app(settings, clock=bridge.clock).test_client()
    assert introspected_and_exchanged(restarted, token) == (False, 400)
    fresh = bearer_token(restarted, session_other_idp, settings)
    assert introspected_and_exchanged(restarted, fresh) == (True, 200)
