"""The endpoints an IdP's metadata names, from the attacker's side: where our (signed) messages and
the browser are sent. A URL with a control character in it is refused when the metadata arrives
(it broke the Location header later: a 500); and an endpoint belongs to one IdP, so that no IdP can
make us sign a message to another with values of its own
(docs/decisions/0021-one-idp-per-endpoint.md)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.dev.saml_idp import DevIdp
from tests.conftest import TEST_KEK
from tests.helpers import pkce_pair
from tests.test_admin_api import acme, api, token  # noqa: F401

SSO = "https://idp.example.org/sso/redirect"
SLO = "https://idp.example.org/slo/redirect"
NEWLINES = [
    (f'Location="{SSO}"', 'Location="https://idp.example.org/sso/re&#10;direct"'),
    (f'Location="{SSO}"', 'Location="https://idp.example.org/sso&#13;&#10;Set-Cookie: a=b"'),
    (f'Location="{SSO}"', 'Location="https://idp.example.org/sso/re&#9;direct"'),
    (f'Location="{SLO}"', 'Location="https://idp.example.org/slo/re&#10;direct"'),
    (f'Location="{SLO}"', f'Location="{SLO}" ResponseLocation="https://idp.example.org/r&#10;x"'),
    (f'Location="{SLO}"', f'Location="{SLO}" ResponseLocation="https://idp.example.org/r x"'),
]
IDS = ["sso-lf", "sso-crlf", "sso-tab", "slo-lf", "slo-response-lf", "slo-response-space"]


def _bridge_cli(tmp_path: Path, idp_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", *args], capture_output=True,
        text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "BRIDGE_IDP_METADATA_DIR": str(idp_dir),
             "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
             "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance"),
             "BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK})


def _authorize(client: FlaskClient, idp: str):  # type: ignore[no-untyped-def]
    _, challenge = pkce_pair()
    return client.get("/authorize", query_string={
        "response_type": "code", "client_id": "demo", "redirect_uri": "http://127.0.0.1:8002/callback",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256", "idp": idp})


# --- a control character in an endpoint URL ------------------------------------------------------

@pytest.mark.parametrize(("genuine", "planted"), NEWLINES, ids=IDS)
def test_an_endpoint_url_with_a_control_character_stops_start_up(
        session_dev_idp: DevIdp, tmp_path: Path, genuine: str, planted: str) -> None:
    """Before, `bridge check` passed and the IdP then answered 500 at /authorize?idp= (SSO) or at
    its Single Logout URL (ResponseLocation): header values may not hold a newline."""
    idp_dir = tmp_path / "idp_metadata"
    session_dev_idp.write_metadata(idp_dir)
    document = (idp_dir / "dev.xml").read_text()
    assert genuine in document
    (idp_dir / "dev.xml").write_text(document.replace(genuine, planted, 1))
    assert _bridge_cli(tmp_path, idp_dir, "db", "upgrade").returncode == 0

    checked = _bridge_cli(tmp_path, idp_dir, "check")

    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"{idp_dir / 'dev.xml'}: Single" in checked.stderr
    assert "contains a control character, a space or a non-ASCII character" in checked.stderr


@pytest.mark.parametrize(("genuine", "planted"), NEWLINES, ids=IDS)
def test_the_admin_api_refuses_an_endpoint_url_with_a_control_character(
        api, client: FlaskClient, session_dev_idp: DevIdp, genuine: str,  # type: ignore[no-untyped-def]  # noqa: F811
        planted: str, dev_idp: DevIdp) -> None:
    document = session_dev_idp.metadata_xml().decode().replace(
        "https://idp.example.org", "https://acme.example.org")
    genuine = genuine.replace("idp.example.org", "acme.example.org")
    planted = planted.replace("idp.example.org", "acme.example.org")
    assert genuine in document

    created = api("POST", "/admin/api/idps", json={
        "slug": "acme", "metadata_xml": document.replace(genuine, planted, 1)})

    assert created.status_code == 422, created.get_data(as_text=True)
    problem = created.get_json()
    assert problem["code"] == "config_invalid"
    assert "contains a control character, a space or a non-ASCII character" in problem["title"]
    assert api("GET", "/admin/api/idps/acme").status_code == 404
    answer = _authorize(client, "acme")  # no such IdP: back to the client, not a 500
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("http://127.0.0.1:8002/callback?error=")
    # An IdP in force does not take such a document either, and keeps the one it has.
    assert api("POST", "/admin/api/idps", json={"slug": "acme",
                                                "metadata_xml": document}).status_code == 201
    proposed = api("POST", "/admin/api/idps/acme/metadata",
                   data=document.replace(genuine, planted, 1).encode(),
                   content_type="application/samlmetadata+xml")
    assert proposed.status_code == 422, proposed.get_data(as_text=True)
    assert [v["status"] for v in api("GET", "/admin/api/idps/acme/metadata/versions")
            .get_json()["versions"]] == ["applied"]
    assert _authorize(client, "acme").headers["Location"].startswith(
        "https://acme.example.org/sso/redirect?SAMLRequest=")


def _onboard(api, slug: str, xml: bytes):  # type: ignore[no-untyped-def]  # noqa: F811
    return api("POST", "/admin/api/idps", data={
        "slug": slug, "settings": json.dumps({"display_name": slug}),
        "metadata": (io.BytesIO(xml), f"{slug}.xml")}, content_type="multipart/form-data")
