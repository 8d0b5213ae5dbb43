"""DPoP interoperability: a resource server built on joserfc alone (no bridge code on its side)
verifies the bridge's bound tokens against the published JWKS and the app's joserfc proofs; and
the resource-server example of docs/dpop.md, run as written, does the same."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from tests.conftest import DEMO_CLIENT, make_settings
from tests.dpop_tools import DpopApp, b64url
from tests.helpers import DEMO_REDIRECT, Browser

ISSUER = "https://bridge.example.com"
API = ISSUER + "/api/orders"


@pytest.fixture(params=["ES256", "EdDSA"])
def settings(request: pytest.FixtureRequest, database: Database, idp_dir: Path, tmp_path: Path,
             dev_idp: DevIdp) -> Settings:
    demo = {**DEMO_CLIENT, "claims_version": 3, "dpop": "required",
            "token_signing_alg": request.param}
    return make_settings(database, idp_dir, tmp_path, clients=[demo])


def login(browser: Browser, app: DpopApp) -> dict[str, Any]:
    code, started = browser.login()
    response = app.token({"grant_type": "authorization_code", "code": code, "client_id": "demo",
                          "redirect_uri": DEMO_REDIRECT, "code_verifier": started.verifier})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def joserfc_resource_server(jwks: dict[str, Any], authorization: str, proof: str,
                            method: str, url: str) -> dict[str, Any]:
    """RFC 9449 §7.1 with joserfc only: the claims, or an exception."""
    scheme, _, token = authorization.partition(" ")
    assert scheme == "DPoP"
    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    key = _proof_key(proof)
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates the name EdDSA, which the bridge still signs with.
        warnings.simplefilter("ignore", SecurityWarning)
        verified = jwt.decode(token, keys, algorithms=["ES256", "EdDSA"])
        unverified = jwt.decode(proof, key, algorithms=["ES256", "EdDSA"])
    assert verified.header["typ"] == "at+jwt"
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER},
                          aud={"essential": True, "value": "demo-api"},
                          exp={"essential": True}).validate(verified.claims)
    assert unverified.header["typ"] == "dpop+jwt"
    claims = unverified.claims
    assert claims["htm"] == method and claims["htu"] == url
    assert abs(time.time() - claims["iat"]) < 60
    assert claims["ath"] == b64url(hashlib.sha256(token.encode()).digest())
    assert verified.claims["cnf"]["jkt"] == key.thumbprint()
    return verified.claims


def _proof_key(proof: str) -> ECKey | OKPKey:
    part = proof.split(".")[0]
    jwk = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["jwk"]
    assert "d" not in jwk
    return ECKey.import_key(jwk) if jwk["kty"] == "EC" else OKPKey.import_key(jwk)


def test_a_joserfc_resource_server_accepts_the_bound_token_with_its_proof(
        browser: Browser, client: FlaskClient) -> None:
    app = DpopApp(client)
    tokens = login(browser, app)
    jwks = client.get("/.well-known/jwks.json").get_json()
    proof = app.key.proof("GET", API, access_token=tokens["access_token"])
    claims = joserfc_resource_server(jwks, f"DPoP {tokens['access_token']}", proof, "GET", API)
    assert claims["cnf"] == {"jkt": app.key.jkt} and claims["client_id"] == "demo"
    # The thief's proof, for the same token: the thumbprints differ.
    thief = DpopApp(client)
    with pytest.raises(AssertionError):
        joserfc_resource_server(jwks, f"DPoP {tokens['access_token']}",
                                thief.key.proof("GET", API, access_token=tokens["access_token"]),
                                "GET", API)


def documented_resource_server(client: FlaskClient) -> dict[str, Any]:
    """The Python example of docs/dpop.md, executed as written, with its JWKS fetched from the
    test app instead of the network."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "dpop.md").read_text()
    source = re.search(r"```python\n(.*?)```", text, re.S)
    assert source is not None
    namespace: dict[str, Any] = {}
    exec(compile(source.group(1), "docs/dpop.md", "exec"), namespace)  # noqa: S102
    jwks = client.get("/.well-known/jwks.json").get_json()
    namespace["jwks"].fetch_data = lambda: jwks
    namespace["AUDIENCE"] = "demo-api"
    return namespace


def test_the_documented_resource_server_accepts_the_holder_and_refuses_a_thief(
        browser: Browser, client: FlaskClient, settings: Settings) -> None:
    if settings.client("demo").token_signing_alg != "ES256":  # type: ignore[union-attr]
        pytest.skip("the example accepts ES256 access tokens, the default")
    app = DpopApp(client)
    tokens = login(browser, app)
    access = tokens["access_token"]
    caller = documented_resource_server(client)["caller"]
    seen: set[tuple[str, str]] = set()
    proof = app.key.proof("GET", API, access_token=access)
    assert caller("GET", API, f"DPoP {access}", [proof], seen)["sub"]
    with pytest.raises(ValueError):  # the same proof again
        caller("GET", API, f"DPoP {access}", [proof], seen)
    with pytest.raises(ValueError):  # as a Bearer token
        caller("GET", API, f"Bearer {access}", [], seen)
    thief = DpopApp(client).key.proof("GET", API, access_token=access)
    with pytest.raises(ValueError):
        caller("GET", API, f"DPoP {access}", [thief], seen)
    with pytest.raises(ValueError):  # a proof for another URL
        caller("GET", API, f"DPoP {access}",
               [app.key.proof("GET", ISSUER + "/api/admin", access_token=access)], seen)
