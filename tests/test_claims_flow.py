"""Claims version 2 end to end, OpenID Connect on top, and the dry run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from bridge.claims.schemas import validate_payload
from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from bridge.tokens.access import at_hash
from tests.attacks import xml_tools as x
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

WEB2 = {"client_id": "web2", "redirect_uris": ["https://web2.example.com/cb"],
        "audience": "https://api.example.com", "claims_version": 2, "public": True}
DEV_MAPPING = """display_name = "Development IdP"
[mapping]
email_verified = true
[mapping.groups]
deny = [{ exact = "suspended" }]
[[mapping.roles]]
exact = "bridge-admins"
role = "admin"
[[mapping.roles]]
prefix = "eng"
role = "engineer"
"""


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    (idp_dir / "dev.toml").write_text(DEV_MAPPING)
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, WEB2],
                         groups_max_count=1, claims_sunset={"1": "2027-06-30"})


def _login(browser: Browser, scope: str, nonce: str = "n-0S6_WzA2Mj") -> dict:
    code, login = browser.login(client_id="web2", redirect_uri=WEB2["redirect_uris"][0],
                                scope=scope, nonce=nonce)
    response = browser.exchange(code, login.verifier, client_id="web2",
                                redirect_uri=WEB2["redirect_uris"][0])
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_v2_token_roles_scopes_budget_and_oidc(browser: Browser) -> None:
    body = _login(browser, "openid profile email groups")
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    validate_payload(access)
    assert access["ver"] == 2
    assert access["roles"] == ["admin", "engineer"]
    assert access["email"] == "alice@example.com" and access["email_verified"] is True
    assert access["given_name"] == "Alice" and access["family_name"] == "Andersen"
    assert access["acr"] == "pwd" and access["amr"] == ["pwd"]
    # Two groups exceed this deployment's budget of one: they move to /userinfo.
    assert "groups" not in access and access["groups_overage"] is True

    # OpenID Connect: an ID token for the client itself.
    id_token = body["id_token"]
    header = jwt.get_unverified_header(id_token)
    jwks = jwt.PyJWKSet.from_dict(browser.client.get("/.well-known/jwks.json").get_json())
    claims = jwt.decode(id_token, jwks[header["kid"]].key, algorithms=["ES256"], audience="web2",
                        issuer="https://bridge.example.com")
    assert claims["sub"] == access["sub"]
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["at_hash"] == at_hash(body["access_token"], "ES256")
    assert "roles" not in claims

    info = browser.client.get("/userinfo",
                              headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.get_json()["groups"] == ["engineering", "bridge-admins"]
    assert info.get_json()["sub"] == access["sub"]


def test_a_refresh_answers_without_an_id_token(browser: Browser) -> None:
    """OIDC Core §12.2: the login's ID token stays the client's; a refresh mints access tokens
    (with the login's auth_time) and no second ID token (decision 0026)."""
    body = _login(browser, "openid profile email")
    login_claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    refreshed = browser.refresh(body["refresh_token"], client_id="web2")
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    answer = refreshed.get_json()
    assert "id_token" not in answer
    assert answer["scope"] == "openid profile email" and answer["refresh_token"]
    access = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert access["auth_time"] == login_claims["auth_time"]
    assert access["sub"] == login_claims["sub"]


def test_v2_token_without_personal_scopes(browser: Browser) -> None:
    body = _login(browser, "")
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    validate_payload(access)
    assert {"email", "name", "groups", "groups_overage"}.isdisjoint(access)
    assert "id_token" not in body


def test_userinfo_refuses_bad_and_revoked_tokens(browser: Browser) -> None:
    body = _login(browser, "openid email")
    for header in ({}, {"Authorization": "Bearer nonsense"},
                   {"Authorization": "Bearer " + body["access_token"][:-4] + "AAAA"}):
        response = browser.client.get("/userinfo", headers=header)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    browser.client.post("/revoke", data={"token": body["refresh_token"], "client_id": "web2"})
    response = browser.client.get("/userinfo",
                                  headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 401


def test_id_token_is_not_an_access_token(browser: Browser) -> None:
    body = _login(browser, "openid email")
    response = browser.client.get("/userinfo", headers={"Authorization": f"Bearer {body['id_token']}"})
    assert response.status_code == 401


def test_deny_rule_refuses_the_login(browser: Browser, dev_idp: DevIdp) -> None:
    from bridge.dev.saml_idp import USERS, User

    login = browser.start(client_id="web2", redirect_uri=WEB2["redirect_uris"][0])
    suspended = User("carol", "carol", "a1b2c3d4-0003", {**USERS["bob"].attributes,
                                                         "isMemberOf": ["suspended"]})
    response = browser.post_acs(dev_idp.response_for(login.pending, suspended))
    assert response.status_code == 400
    assert response.get_json()["code"] == "claims_login_denied"
    assert browser.issued_nothing()


def test_deprecated_version_says_so_until_its_sunset(browser: Browser) -> None:
    code, login = browser.login()
    response = browser.exchange(code, login.verifier)
    assert response.get_json()["claims_version_deprecated"] is True
    assert response.get_json()["claims_version_sunset"] == "2027-06-30"
    assert response.headers["Sunset"] == "Wed, 30 Jun 2027 23:59:59 GMT"
    fresh = _login(browser, "openid")
    assert "claims_version_deprecated" not in fresh


def test_discovery_lists_both_versions_and_oidc(browser: Browser) -> None:
    document = browser.client.get("/.well-known/openid-configuration").get_json()
    assert document["claims_schema_versions_supported"] == [1, 2, 3]
    assert document["claims_schemas"]["2"] == "https://bridge.example.com/schemas/claims/v2.json"
    assert document["userinfo_endpoint"] == "https://bridge.example.com/userinfo"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert {"roles", "tenant", "amr", "acr"} <= set(document["claims_supported"])
    assert browser.client.get("/schemas/claims/v2.json").status_code == 200


@pytest.mark.slow  # starts a process
def test_claims_preview_cli_in_force_and_proposed(tmp_path: Path, settings: Settings) -> None:
    attributes = tmp_path / "attributes.json"
    attributes.write_text(json.dumps({"name_id": "u-1", "attributes": {
        "mail": ["Alice@Example.com"], "groups": ["eng-platform", "bridge-admins"]}}))
    proposed = tmp_path / "proposed.toml"
    proposed.write_text('[mapping.claims.email]\nfrom = ["mail"]\ntransforms = ["lower"]\n'
                        '[[mapping.roles]]\nexact = "eng-platform"\nrole = "platform"\n')
    env = {"PATH": "/usr/bin:/bin", "BRIDGE_IDP_METADATA_DIR": settings.idp_metadata_dir,
           "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance")}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "claims", "preview", "--idp", "dev",
         "--response", str(attributes), "--mapping", str(proposed)],
        capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["attributes"]["mail"] == ["Alice@Example.com"]
    assert out["in_force"]["v2"]["claims"]["roles"] == ["admin", "engineer"]
    assert out["in_force"]["v2"]["claims"]["email"] == "Alice@Example.com"
    assert out["proposed"]["v2"]["claims"]["roles"] == ["platform"]
    assert out["proposed"]["v2"]["claims"]["email"] == "alice@example.com"
    assert out["in_force"]["v1"]["claims"]["groups"] == ["eng-platform", "bridge-admins"]


@pytest.mark.slow  # starts a process
def test_claims_preview_from_a_saml_response(tmp_path: Path, settings: Settings,
                                            browser: Browser) -> None:
    login = browser.start()
    (tmp_path / "response.b64").write_text(browser.signed_response(login))
    env = {"PATH": "/usr/bin:/bin", "BRIDGE_IDP_METADATA_DIR": settings.idp_metadata_dir,
           "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance")}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "claims", "preview", "--idp", "dev",
         "--response", str(tmp_path / "response.b64")],
        capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["name_id"] == "a1b2c3d4-0001"
    assert out["in_force"]["v2"]["claims"]["roles"] == ["admin", "engineer"]
    assert "proposed" not in out


@pytest.mark.slow  # starts a process
def test_claims_preview_refuses_a_transient_nameid_as_a_login_does(tmp_path: Path,
                                                                   settings: Settings,
                                                                   browser: Browser) -> None:
    login = browser.start()
    root = x.decode(browser.signed_response(login))
    x.one(root, "//saml:Subject/saml:NameID").set(
        "Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
    (tmp_path / "response.b64").write_text(x.encode(root))
    env = {"PATH": "/usr/bin:/bin", "BRIDGE_IDP_METADATA_DIR": settings.idp_metadata_dir,
           "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance")}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "claims", "preview", "--idp", "dev",
         "--response", str(tmp_path / "response.b64")],
        capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert (out["outcome"], out["code"]) == ("refused", "saml_subject_transient")
    assert "in_force" not in out and "sub" not in out


def test_sunset_must_name_a_version_and_a_date(database: Database, idp_dir: Path,
                                               tmp_path: Path) -> None:
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="claims_sunset.7"):
        make_settings(database, idp_dir, tmp_path, claims_sunset={"7": dt.date(2027, 1, 1)})
