"""An admin's power (a session, a token made by that person) comes from a sign-in through an IdP:
it ends with the IdP. Deleting an IdP of the admin API ends it at once; what that deletion could
not see (a token made while it ran) and an IdP whose file was removed must not keep it either,
nor may an IdP made later under the same slug bring it back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.deprovisioned import deprovision, reinstate
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.web import create_app
from tests.conftest import DEMO_CLIENT, MovableClock, make_settings
from tests.helpers import live_api_idp


def _with(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _session_of(access: AdminAccess, idp_slug: str) -> str:
    session_id = access.claim_ticket(access.issue_ticket(subject="sub-x", name="X",
                                                         idp_slug=idp_slug))
    assert session_id is not None
    return session_id


def _opens(client: FlaskClient, *, token: str | None = None, session_id: str | None = None
           ) -> int:
    if session_id is not None:
        client.set_cookie("__Host-bridge-admin", session_id)
    response = client.get("/admin/api/tokens", headers=_with(token) if token else {})
    client.delete_cookie("__Host-bridge-admin")
    return response.status_code


def _automation(app: Flask, bridge: Services
                ) -> tuple[AdminAccess, str, Callable[..., TestResponse]]:
    """Admin access, a command-line admin token (owned by nobody) and a caller of the admin API
    with it."""
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    cli = access.create_token("automation", expires_in=3600, actor="cli:ops")[1]
    client = app.test_client()

    def api(method: str, path: str, **kwargs: object) -> TestResponse:
        return client.open(path, method=method, headers=_with(cli), **kwargs)

    return access, cli, api


def test_power_from_a_removed_idp_file_ends_with_the_file(
        app: Flask, bridge: Services, database: Database, dev_idp: DevIdp, idp_dir: Path,
        tmp_path: Path) -> None:
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    token = access.create_token("mine", expires_in=3600, actor="user:sub-x (X)",
                                owner=("dev", "sub-x"))[1]
    session_id = _session_of(access, "dev")
    assert _opens(app.test_client(), token=token) == 200
    assert _opens(app.test_client(), session_id=session_id) == 200

    for file in idp_dir.glob("dev.*"):
        file.unlink()
    restarted = build_services(make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT]),
                               MovableClock())
    try:
        node = create_app(services=restarted)
        assert _opens(node.test_client(), token=token) == 401
        assert _opens(node.test_client(), session_id=session_id) == 401
    finally:
        restarted.db.dispose()


def test_a_token_made_while_its_idp_was_deleted_opens_nothing_then_or_later(
        app: Flask, bridge: Services, session_other_idp: DevIdp) -> None:
    access, cli, api = _automation(app, bridge)
    client = app.test_client()
    live_api_idp(api, session_other_idp, "other")
    assert _opens(client, session_id=_session_of(access, "other")) == 200
    assert api("DELETE", "/admin/api/idps/other").status_code == 204
    # Made by a person of the deleted IdP, committed after the deletion ended the others.
    late = access.create_token("late", expires_in=3600, actor="user:sub-x (X)",
                               owner=("other", "sub-x"))[1]
    assert _opens(client, token=late) == 401
    # A sign-in through it that finished meanwhile gives no session either.
    assert access.claim_ticket(access.issue_ticket(subject="sub-x", name="X",
                                                   idp_slug="other")) is None
    # The IdP restored (in testing, then live again) is not the one that gave that power.
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    assert api("POST", "/admin/api/deleted-idps/other/restore").status_code == 200
    assert _opens(client, token=late) == 401
    assert api("POST", "/admin/api/idps/other/go-live",
               json={"without_test": True}).status_code == 200
    assert _opens(client, token=late) == 401
    assert _opens(client, session_id=_session_of(access, "other")) == 200  # a new sign-in
    assert _opens(client, token=cli) == 200


def test_a_sign_in_through_a_deleted_idp_claimed_after_another_took_its_slug_opens_nothing(
        app: Flask, bridge: Services, session_other_idp: DevIdp) -> None:
    """The sign-in ticket was written as the IdP's deletion ran (its ACS finished meanwhile) and
    is claimed once another IdP holds the slug: the session it would give is judged from the
    sign-in, which the new IdP did not make."""
    access, _, api = _automation(app, bridge)
    live_api_idp(api, session_other_idp, "other")
    signed_in_at = bridge.clock.now()
    assert api("DELETE", "/admin/api/idps/other").status_code == 204
    ticket = access.issue_ticket(subject="sub-x", name="X", idp_slug="other",
                                 signed_in_at=signed_in_at)
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    live_api_idp(api, session_other_idp, "other")
    assert access.claim_ticket(ticket) is None


def test_a_sign_in_during_which_its_person_was_deactivated_and_reactivated_opens_nothing(
        app: Flask, bridge: Services, dev_idp: DevIdp) -> None:
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    signed_in_at = bridge.clock.now()
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    with bridge.db.transaction() as session:
        deprovision(session, idp_slug="dev", subject="sub-x", source="scim",
                    reason="scim_deactivated", now=bridge.clock.now(), actor="scim")
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    with bridge.db.transaction() as session:
        assert reinstate(session, idp_slug="dev", subject="sub-x", now=bridge.clock.now(),
                         actor="scim")
    ticket = access.issue_ticket(subject="sub-x", name="X", idp_slug="dev",
                                 signed_in_at=signed_in_at)
    assert access.claim_ticket(ticket) is None
    assert _opens(app.test_client(), session_id=_session_of(access, "dev")) == 200  # afresh


def test_power_made_while_its_person_was_refused_stays_ended_after_the_reactivation(
        app: Flask, bridge: Services, dev_idp: DevIdp) -> None:
    """A token or sign-in made by a request that raced the deprovisioning (committed after it)
    was never the person's to have: lifting the refusal does not hand it to them."""
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    with bridge.db.transaction() as session:
        deprovision(session, idp_slug="dev", subject="sub-x", source="scim",
                    reason="scim_deactivated", now=bridge.clock.now(), actor="scim")
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    raced = access.create_token("raced", expires_in=3600, actor="user:sub-x (X)",
                                owner=("dev", "sub-x"))[1]
    ticket = access.issue_ticket(subject="sub-x", name="X", idp_slug="dev")
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    with bridge.db.transaction() as session:
        assert reinstate(session, idp_slug="dev", subject="sub-x", now=bridge.clock.now(),
                         actor="scim")
    assert _opens(app.test_client(), token=raced) == 401
    assert access.claim_ticket(ticket) is None
    bridge.clock.advance(1)  # type: ignore[attr-defined]
    fresh = access.create_token("fresh", expires_in=3600, actor="user:sub-x (X)",
                                owner=("dev", "sub-x"))[1]
    assert _opens(app.test_client(), token=fresh) == 200
    assert _opens(app.test_client(), session_id=_session_of(access, "dev")) == 200
