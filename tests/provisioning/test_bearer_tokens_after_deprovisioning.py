"""docs/deprovisioning.md: when the IdP deactivates a person, "/introspect answers
{"active": false} for their access and refresh tokens" and "/userinfo refuses them", on every
node, from the moment the revocation commits. That includes an access token the person's
service obtained with a SAML bearer assertion (RFC 7522), and what a token exchange (RFC 8693)
makes of it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.store.db import Database
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings
from tests.provisioning.conftest import ALICE_NAME_ID, Scim
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user

TOKEN_URL = "https://bridge.example.com/token"
BACKEND = {**CONFIDENTIAL_CLIENT, "allow_saml_bearer": True,
           "token_exchange_audiences": ["downstream-api"]}
ASSERTION = "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    dev = idp_dir / "dev.toml"
    dev.write_text('scim_user_key = "userName"\n' + dev.read_text())
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, BACKEND])


def _bearer_token(client: FlaskClient, dev_idp: DevIdp, settings: Settings) -> str:
    response = base64.b64decode(dev_idp.response_for(
        None, USERS["alice"], acs_url=TOKEN_URL, sp_entity_id=settings.sp_entity_id))
    assertion = etree.fromstring(response).find(f".//{ASSERTION}")
    encoded = base64.urlsafe_b64encode(etree.tostring(assertion)).rstrip(b"=").decode()
    granted = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:saml2-bearer", "assertion": encoded,
        "scope": "openid email"}, auth=("backend", CONFIDENTIAL_SECRET))
    assert granted.status_code == 200, granted.get_data(as_text=True)
    return str(granted.get_json()["access_token"])


def test_a_saml_bearer_access_token_is_inactive_once_the_person_is_deactivated(
        client: FlaskClient, scim: Scim, dev_idp: DevIdp, settings: Settings) -> None:
    token = _bearer_token(client, dev_idp, settings)
    assert client.post("/introspect", data={"token": token},
                       auth=("backend", CONFIDENTIAL_SECRET)).get_json()["active"] is True
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    assert scim("PATCH", f"/Users/{created.get_json()['id']}", OKTA_DEACTIVATE).status_code == 200

    introspected = client.post("/introspect", data={"token": token},
                               auth=("backend", CONFIDENTIAL_SECRET)).get_json()
    exchanged = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "downstream-api"}, auth=("backend", CONFIDENTIAL_SECRET))
    # Inactive, and no new token for the deactivated person.
    assert (introspected["active"], exchanged.status_code) == (False, 400), \
        (introspected, exchanged.status_code)
