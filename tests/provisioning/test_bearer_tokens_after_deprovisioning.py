"""docs/deprovisioning.md: when the IdP deactivates a person, "/introspect answers
{"active": false} for their access and refresh tokens" and "/userinfo refuses them", on every
node, from the moment the revocation commits. That includes an access token the person's
service obtained with a SAML bearer assertion (RFC 7522), and what a token exchange (RFC 8693)
makes of it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from bridge.store.models import AuditEvent
from tests.bearer_tools import (
    BACKEND,
    active,
    bearer_grant,
    bearer_token,
    introspected_and_exchanged,
)
from tests.conftest import DEMO_CLIENT, make_settings
from tests.provisioning.conftest import ALICE_NAME_ID, Scim
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    dev = idp_dir / "dev.toml"
    dev.write_text('scim_user_key = "userName"\n' + dev.read_text())
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, BACKEND])


def test_a_saml_bearer_access_token_is_inactive_once_the_person_is_deactivated(
        client: FlaskClient, scim: Scim, dev_idp: DevIdp, settings: Settings) -> None:
    token = bearer_token(client, dev_idp, settings)
    assert active(client, token)
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert scim("PATCH", f"/Users/{created.get_json()['id']}", OKTA_DEACTIVATE).status_code == 200

    # Inactive, and no new token for the deactivated person.
    assert introspected_and_exchanged(client, token) == (False, 400)


def _last_refusal(database: Database) -> str | None:
    with database.transaction() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.event == "saml_bearer")
                                .order_by(AuditEvent.id.desc())).first()
        assert event is not None and event.outcome == "refused"
        return event.code


def test_a_deprovisioned_persons_assertion_dated_in_the_future_is_refused_as_deprovisioned(
        client: FlaskClient, scim: Scim, dev_idp: DevIdp, settings: Settings,
        database: Database) -> None:
    """As at the ACS: an AuthnInstant no login can have is refused, but a deprovisioned
    person's assertion is refused for the person, whatever else is wrong with it; the same
    assertion of a person not deprovisioned is refused for its AuthnInstant. Nothing issued."""
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert scim("PATCH", f"/Users/{created.get_json()['id']}", OKTA_DEACTIVATE).status_code == 200
    future = int(time.time()) + 365 * 86400

    now_dated = bearer_grant(client, dev_idp, settings)
    assert "access_token" not in now_dated.get_json()
    assert _last_refusal(database) == "login_deprovisioned"

    future_dated = bearer_grant(client, dev_idp, settings, authn_instant=future)
    assert (future_dated.status_code, future_dated.get_json()) == (
        now_dated.status_code, now_dated.get_json())
    assert _last_refusal(database) == "login_deprovisioned"

    bob = bearer_grant(client, dev_idp, settings, user="bob", authn_instant=future)
    assert bob.status_code == 400 and "access_token" not in bob.get_json()
    assert bob.get_json()["error"] == "invalid_grant"
    assert _last_refusal(database) == "authn_instant_in_future"
