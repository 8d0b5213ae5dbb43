"""Access tokens of no login (the SAML bearer grant, RFC 7522) for tests that end them: a backend
client that may use the grant and token exchange, a token for alice through a given IdP, and
what /introspect and a token exchange then make of it."""

from __future__ import annotations

import base64

from flask.testing import FlaskClient
from lxml import etree
from werkzeug.test import TestResponse

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET

TOKEN_URL = "https://bridge.example.com/token"
BACKEND = {**CONFIDENTIAL_CLIENT, "allow_saml_bearer": True,
           "token_exchange_audiences": ["downstream-api"]}
_ASSERTION = "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"
_AUTH = ("backend", CONFIDENTIAL_SECRET)


def bearer_grant(client: FlaskClient, idp: DevIdp, settings: Settings, *, user: str = "alice",
                 authn_instant: int | None = None) -> TestResponse:
    """The bearer grant's answer to ``user``'s assertion signed by ``idp`` (authenticated at
    ``authn_instant``, by default now)."""
    response = base64.b64decode(idp.response_for(
        None, USERS[user], acs_url=TOKEN_URL, sp_entity_id=settings.sp_entity_id,
        authn_instant=authn_instant))
    assertion = etree.fromstring(response).find(f".//{_ASSERTION}")
    encoded = base64.urlsafe_b64encode(etree.tostring(assertion)).rstrip(b"=").decode()
    return client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:saml2-bearer", "assertion": encoded,
        "scope": "openid email"}, auth=_AUTH)


def bearer_token(client: FlaskClient, idp: DevIdp, settings: Settings) -> str:
    """An access token for alice from ``idp``'s signed assertion, through the bearer grant."""
    granted = bearer_grant(client, idp, settings)
    assert granted.status_code == 200, granted.get_data(as_text=True)
    return str(granted.get_json()["access_token"])


def active(client: FlaskClient, token: str) -> bool:
    """What /introspect says of ``token``."""
    return bool(client.post("/introspect", data={"token": token}, auth=_AUTH).get_json()["active"])


def introspected_and_exchanged(client: FlaskClient, token: str) -> tuple[bool, int]:
    """/introspect's ``active`` for ``token``, and the status of exchanging it for a token of
    another API (RFC 8693)."""
    exchanged = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "downstream-api"}, auth=_AUTH)
    return active(client, token), exchanged.status_code
