"""Deleting an IdP ends its logins: "nobody vouches for them any more". An access token of no
login (SAML bearer grant, RFC 7522) obtained through that IdP must end with it too: inactive at
/introspect, refused as a token exchange's subject token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge.admin.access import AdminAccess
from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.live_logins import access_token_live
from bridge.services import Services
from bridge.store.db import Database
from bridge.store.models import AuditEvent
from bridge.web import create_app
from tests.bearer_tools import (
    BACKEND,
    active,
    bearer_grant,
    bearer_token,
    introspected_and_exchanged,
)
from tests.conftest import CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings, test_sp_metadata
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


@pytest.fixture
def restart(settings: Settings, bridge: Services) -> Iterator[Callable[[], FlaskClient]]:
    """Another node, or this one restarted (idp_metadata/ read again): its own services on the
    same database and clock, closed at the end."""
    started: list[Services] = []

    def start() -> FlaskClient:
        app = create_app(settings, clock=bridge.clock)
        started.append(app.extensions["bridge"])
        return app.test_client()
    yield start
    for services in started:
        services.db.dispose()


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
        settings: Settings, idp_dir: Path, restart: Callable[[], FlaskClient]) -> None:
    """The operator declares an IdP in idp_metadata/ under the slug an IdP of the admin API
    had, and restarts: what the deleted IdP vouched for stays ended; what the file's IdP
    vouches for from then on stands."""
    live_api_idp(api, session_other_idp, SLUG)
    token = bearer_token(client, session_other_idp, settings)
    bridge.clock.advance(5)  # type: ignore[attr-defined]
    _deleted(api, bridge)

    restarted = _declared_in_a_file(session_other_idp, idp_dir, restart)
    assert introspected_and_exchanged(restarted, token) == (False, 400)
    fresh = bearer_token(restarted, session_other_idp, settings)
    assert introspected_and_exchanged(restarted, fresh) == (True, 200)


def test_a_node_that_has_not_seen_the_deletion_issues_nothing_through_the_deleted_idp(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, idp_dir: Path, restart: Callable[[], FlaskClient]) -> None:
    """Another node still has the deleted IdP in its registry (it rereads the IdPs every few
    seconds): its bearer grant checks the IdP against the database and issues nothing."""
    other_node = _node_that_read_the_idps(api, session_other_idp, settings, restart)
    _deleted(api, bridge, then=0.5)
    refused = bearer_grant(other_node, session_other_idp, settings)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_grant"
    assert "access_token" not in refused.get_json()
    assert _audited_refusals(bridge, "saml_idp_not_in_force") == 1


def test_a_node_that_has_not_seen_another_idp_made_under_the_slug_issues_nothing_through_the_old(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, tmp_path: Path, restart: Callable[[], FlaskClient]) -> None:
    third = DevIdp(base_url="https://third-idp.example.org", state_dir=tmp_path / "third",
                   sp_metadata=test_sp_metadata)
    other_node = _node_that_read_the_idps(api, session_other_idp, settings, restart)
    _deleted(api, bridge, then=0.5)
    live_api_idp(api, third, SLUG)
    bridge.clock.advance(0.5)  # type: ignore[attr-defined]
    refused = bearer_grant(other_node, session_other_idp, settings)
    assert refused.status_code == 400 and "access_token" not in refused.get_json()
    assert _audited_refusals(bridge, "saml_idp_not_in_force") == 1
    assert active(client, bearer_token(client, third, settings))  # the IdP now in force


def test_a_file_vouches_for_no_token_issued_through_an_idp_of_the_admin_api(
        api, bridge: Services, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, idp_dir: Path, restart: Callable[[], FlaskClient]) -> None:
    """Even one issued after the last deletion under the slug (a grant that began checking as
    the deletion committed): it came through the deleted IdP, not the file."""
    node = _declared_in_a_file(session_other_idp, idp_dir, restart)
    token = bearer_token(node, session_other_idp, settings)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["jti"].startswith("f") and active(node, token)
    services = node.application.extensions["bridge"]
    assert access_token_live(services, claims)
    assert not access_token_live(services, {**claims, "jti": "a" + claims["jti"][1:]})


def _deleted(api, bridge: Services, *, then: float = 5) -> None:  # type: ignore[no-untyped-def]
    """The admin API deletes the IdP; ``then`` seconds pass."""
    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    bridge.clock.advance(then)  # type: ignore[attr-defined]


def _declared_in_a_file(idp: DevIdp, idp_dir: Path,
                        restart: Callable[[], FlaskClient]) -> FlaskClient:
    """``idp`` put in idp_metadata/ under the slug, and the node restarted."""
    idp.write_metadata(idp_dir, slug=SLUG)
    return restart()


def _node_that_read_the_idps(api, idp: DevIdp, settings: Settings,  # type: ignore[no-untyped-def]
                             restart: Callable[[], FlaskClient]) -> FlaskClient:
    """Another node, whose registry has read ``idp`` made live through the admin API and reads
    the IdPs no more during the test: its recheck interval (2 s of the shared clock, which runs
    with real time) could pass between a test's steps on a loaded machine."""
    live_api_idp(api, idp, SLUG)
    node = restart()
    assert active(node, bearer_token(node, idp, settings))
    node.application.extensions["bridge"].idps.recheck_seconds = 3600.0
    return node


def _audited_refusals(bridge: Services, code: str) -> int:
    with bridge.db.transaction() as session:
        return len(list(session.scalars(select(AuditEvent).where(
            AuditEvent.code == code, AuditEvent.outcome != "success"))))


def test_an_exchanged_token_names_the_kind_of_idp_its_subject_token_came_through(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, idp_dir: Path, restart: Callable[[], FlaskClient]) -> None:
    live_api_idp(api, session_other_idp, SLUG)
    exchanged = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": bearer_token(client, session_other_idp, settings),
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "downstream-api"}, auth=("backend", CONFIDENTIAL_SECRET))
    assert exchanged.status_code == 200, exchanged.get_data(as_text=True)
    token = exchanged.get_json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["jti"].startswith("a")
    _deleted(api, bridge)
    restarted = _declared_in_a_file(session_other_idp, idp_dir, restart)
    introspected = restarted.post("/introspect", data={"token": token},
                                  auth=("backend", CONFIDENTIAL_SECRET))
    assert introspected.get_json() == {"active": False}


@pytest.mark.parametrize("issued_after_the_deletion", [False, True])
def test_a_token_whose_jti_does_not_name_the_kind_is_judged_by_the_deletions_under_a_file(
        api, bridge: Services, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, idp_dir: Path, restart: Callable[[], FlaskClient],
        monkeypatch: pytest.MonkeyPatch, issued_after_the_deletion: bool) -> None:
    """Tokens issued before jti named the kind of IdP (``t<ms>.``): a file under the slug vouches
    for those issued after the last deletion of an IdP of the admin API there, not before."""
    from bridge.tokens import access

    made = access.new_jti
    monkeypatch.setattr(access, "new_jti", lambda login, at, through="t": made(login, at, "t"))
    live_api_idp(api, session_other_idp, SLUG)
    if not issued_after_the_deletion:
        token = bearer_token(client, session_other_idp, settings)
        bridge.clock.advance(5)  # type: ignore[attr-defined]
    _deleted(api, bridge)
    restarted = _declared_in_a_file(session_other_idp, idp_dir, restart)
    if issued_after_the_deletion:
        token = bearer_token(restarted, session_other_idp, settings)
    assert jwt.decode(token, options={"verify_signature": False})["jti"].startswith("t")
    assert active(restarted, token) is issued_after_the_deletion


def test_a_files_token_stays_ended_once_an_idp_of_the_admin_api_held_its_slug_since(
        api, bridge: Services, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]
        settings: Settings, idp_dir: Path, restart: Callable[[], FlaskClient]) -> None:
    """The file removed, an IdP of the admin API made and deleted under its slug, a file put back:
    that file may be another IdP, and vouches for nothing issued before the gap."""
    with_file = _declared_in_a_file(session_other_idp, idp_dir, restart)
    token = bearer_token(with_file, session_other_idp, settings)
    assert jwt.decode(token, options={"verify_signature": False})["jti"].startswith("f")
    assert active(with_file, token)
    for declared in idp_dir.glob(f"{SLUG}.*"):
        declared.unlink()
    assert not active(restart(), token)

    bridge.clock.advance(5)  # type: ignore[attr-defined]
    live_api_idp(api, session_other_idp, SLUG)
    bridge.clock.advance(5)  # type: ignore[attr-defined]
    _deleted(api, bridge)
    back = _declared_in_a_file(session_other_idp, idp_dir, restart)
    assert not active(back, token)
    assert active(back, bearer_token(back, session_other_idp, settings))


@pytest.mark.parametrize("another_under_the_slug", [False, True])
@pytest.mark.parametrize("future_dated", [False, True])
def test_an_idp_deleted_while_its_assertion_is_checked_issues_nothing(
        api, client: FlaskClient, session_other_idp: DevIdp, settings: Settings,  # type: ignore[no-untyped-def]
        database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        another_under_the_slug: bool, future_dated: bool) -> None:
    """The IdP is deleted (and, in one case, another IdP made live under its slug) after its
    signature on the assertion was verified and before the grant asks whether it is still in
    force: the grant checks the IdP that verified the signature, not whatever the registry holds
    by then, so it refuses with a 400 and issues nothing (it issued a token through the new IdP,
    or failed with a 500 when the slug was gone)."""
    from bridge.saml.idp import SamlIdp

    live_api_idp(api, session_other_idp, SLUG)
    third = DevIdp(base_url="https://third-idp.example.org", state_dir=tmp_path / "third",
                   sp_metadata=test_sp_metadata)
    checked = SamlIdp.require_current_metadata
    armed = [True]

    def deleted_meanwhile(idp: SamlIdp, now: float) -> None:
        if armed and armed.pop():
            assert api("DELETE", f"/admin/api/idps/{SLUG}",
                       json={"confirm_slug": SLUG}).status_code == 204
            if another_under_the_slug:
                live_api_idp(api, third, SLUG)
        checked(idp, now)

    monkeypatch.setattr(SamlIdp, "require_current_metadata", deleted_meanwhile)
    future = int(time.time()) + 365 * 86400 if future_dated else None
    answer = bearer_grant(client, session_other_idp, settings, authn_instant=future)
    assert not armed  # the deletion happened inside the grant
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"] == "invalid_grant"
    assert "access_token" not in answer.get_json()
    with database.transaction() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.event == "saml_bearer")
                                .order_by(AuditEvent.id.desc())).first()
        assert event is not None and event.outcome == "refused"
        assert event.code == "saml_idp_not_in_force"


@pytest.mark.parametrize("future_dated", [False, True])
def test_an_idp_deleted_right_after_verifying_its_signature_is_a_400(
        api, client: FlaskClient, session_other_idp: DevIdp, settings: Settings,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch, future_dated: bool) -> None:
    """The registry reloaded between the signature check and the grant's next look at the IdP
    (which found its slug gone: a 500 with no audit event): the grant keeps the IdP it verified
    with, and refuses it as no longer in force."""
    from bridge.oauth.grants import saml_bearer

    live_api_idp(api, session_other_idp, SLUG)
    verify = saml_bearer.verify_bearer_assertion

    def then_deleted(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return verify(*args, **kwargs)
        finally:
            assert api("DELETE", f"/admin/api/idps/{SLUG}",
                       json={"confirm_slug": SLUG}).status_code == 204

    monkeypatch.setattr(saml_bearer, "verify_bearer_assertion", then_deleted)
    future = int(time.time()) + 365 * 86400 if future_dated else None
    answer = bearer_grant(client, session_other_idp, settings, authn_instant=future)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert (answer.get_json()["error"], "access_token" in answer.get_json()) == (
        "invalid_grant", False)
