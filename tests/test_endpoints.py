"""Discovery, JWKS, schemas, SP metadata, health: what generic clients configure themselves from."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from lxml import etree

from bridge.claims.schemas import schema
from bridge.clock import SystemClock
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.tokens.keys import generate_kek
from bridge.web import create_app
from tests.conftest import make_settings
from tests.databases import POSTGRES_URL


def test_discovery_document(client: FlaskClient) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        document = client.get(path).get_json()
        assert document["issuer"] == "https://bridge.example.com"
        assert document["authorization_endpoint"] == "https://bridge.example.com/authorize"
        assert document["token_endpoint"] == "https://bridge.example.com/token"
        assert document["revocation_endpoint"] == "https://bridge.example.com/revoke"
        assert document["jwks_uri"] == "https://bridge.example.com/.well-known/jwks.json"
        assert document["response_types_supported"] == ["code"]
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert set(document["grant_types_supported"]) == {
            "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:saml2-bearer"}
        assert "none" in document["token_endpoint_auth_methods_supported"]
        assert {"openid", "email"} <= set(document["scopes_supported"])
        assert {"sub", "email", "groups", "idp", "ver"} <= set(document["claims_supported"])
        assert document["access_token_signing_alg_values_supported"] == ["ES256"]


def test_jwks_publishes_public_keys_only(client: FlaskClient) -> None:
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"]
    assert "d" not in key


def test_claims_schema_is_served_and_is_a_valid_schema(client: FlaskClient) -> None:
    response = client.get("/schemas/claims/v1.json")
    assert response.status_code == 200
    assert response.mimetype == "application/schema+json"
    served = json.loads(response.data)
    assert served == schema(1)
    jsonschema.Draft202012Validator.check_schema(served)
    missing = client.get("/schemas/claims/v99.json", headers={"Accept": "application/json"})
    assert missing.status_code == 404
    assert missing.get_json()["code"] == "schema_unknown"


def test_sp_metadata_names_every_acs(client: FlaskClient) -> None:
    response = client.get("/saml/metadata")
    assert response.status_code == 200
    root = etree.fromstring(response.data)
    assert root.get("entityID") == "https://bridge.example.com/saml/metadata"
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    services = root.findall(f"{{{md}}}SPSSODescriptor/{{{md}}}AssertionConsumerService")
    assert [s.get("Location") for s in services] == ["https://bridge.example.com/saml/dev/acs"]
    assert services[0].get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert root.find(f"{{{md}}}SPSSODescriptor").get("WantAssertionsSigned") == "true"


def test_health_and_readiness(client: FlaskClient, bridge: Services) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    # Ready, with the background jobs' state (none has run; this app starts no scheduler).
    assert client.get("/readyz").get_json() == {
        "status": "ready", "background": {"scheduler": "disabled", "jobs": {}}}


def test_readiness_reports_an_unreachable_database(client: FlaskClient, bridge: Services,
                                                   monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(bridge.db, "ping", lambda: False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_unknown_idp_acs_is_404_with_a_code(client: FlaskClient) -> None:
    response = client.post("/saml/nobody/acs", data={"SAMLResponse": "x"},
                           headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["code"] == "idp_unknown"


def test_error_page_for_browsers_shows_code_and_reference(client: FlaskClient) -> None:
    response = client.post("/saml/dev/acs", data={"SAMLResponse": "%%%"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="error-code">saml_malformed<' in page
    assert 'id="error-id">' in page
    assert "Traceback" not in page


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_readiness_fails_naming_the_keys_a_wrong_key_encryption_key_cannot_decrypt(
        database: Database, idp_dir: Path, tmp_path: Path, bridge: Services) -> None:
    # `bridge` made this database's keys with the session's key-encryption key; this node is
    # configured with another one.
    kids = [key["kid"] for key in bridge.keys.jwks()["keys"]]
    settings = make_settings(database, idp_dir, tmp_path, key_encryption_key=generate_kek())
    node = build_services(settings, SystemClock())
    try:
        client = create_app(services=node).test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        reason = ready.get_json()["reason"]
        assert reason.startswith(f"key_encryption_key: cannot decrypt signing key {kids[0]}, SAML key ")
        # What it could not have served: SP metadata (its encryption certificate comes with the
        # key) answers 503 with a code, never 500.
        metadata = client.get("/saml/metadata", headers={"Accept": "application/json"})
        assert metadata.status_code == 503 and metadata.get_json()["code"] == "config_invalid"
    finally:
        node.db.dispose()
    assert create_app(services=bridge).test_client().get("/readyz").status_code == 200


def test_the_oauth_endpoints_answer_an_unreachable_database_in_their_own_format(
        client: FlaskClient, bridge: Services, database: Database) -> None:
    """RFC 6749 §5.2 (and RFC 7009, RFC 7662): an OAuth client reads a JSON error with an
    ``error`` field, also when the database is down (503, Retry-After), where the token
    endpoint answered with the browsers' HTML page. PostgreSQL refuses every connection to the
    bridge's database for the while."""
    if bridge.db.dialect != "postgresql":
        pytest.skip("a database refusing connections is a PostgreSQL matter")
    name = sa.engine.make_url(bridge.db.url).database
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    requests = [("/token", {"grant_type": "refresh_token", "refresh_token": "t" * 43,
                            "client_id": "demo"}),
                ("/revoke", {"token": "t" * 43, "client_id": "demo"})]
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        for path, form in requests:
            for accept in ("*/*", "text/html", "application/json"):
                answer = client.post(path, data=form, headers={"Accept": accept})
                assert answer.status_code == 503, (path, answer.get_data(as_text=True))
                assert answer.mimetype == "application/json", (path, accept)
                assert answer.get_json()["error"] == "temporarily_unavailable"
                assert answer.headers["Retry-After"]
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        # Every pool on it holds killed connections: the test's own, and the session's.
        bridge.db.dispose()
        database.dispose()
    # Back once the database is.
    assert client.post("/revoke", data=requests[1][1]).status_code == 200


def test_the_oauth_endpoints_answer_a_wrong_method_in_their_own_format(client: FlaskClient) -> None:
    for path in ("/token", "/revoke", "/introspect", "/logout"):
        answer = client.get(path, headers={"Accept": "text/html"})
        assert answer.status_code == 405
        assert answer.mimetype == "application/json", path
        assert answer.get_json()["error"] == "invalid_request"
        assert "POST" in answer.headers["Allow"]
