"""docs/deprovisioning.md: when the IdP deactivates a person, "/introspect answers
{"active": false} for their access and refresh tokens" and "/userinfo refuses them", on every
node, from the moment the revocation commits. That includes an access token the person's
service obtained with a SAML bearer assertion (RFC 7522), and what a token exchange (RFC 8693)
makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from tests.bearer_tools import BACKEND, active, bearer_token, introspected_and_exchanged
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
