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
import sqlalchemy as sa
from flask.testing import FlaskClient
from lxml import etree

from bridge.clock import SystemClock
from bridge.dev.saml_idp import DevIdp
from bridge.errors import ConfigError
from bridge.services import Services, build_services
from bridge.store.db import Database
from tests.conftest import TEST_KEK, make_settings
from tests.helpers import pkce_pair
from tests.test_admin_api import acme, api, token  # noqa: F401


@pytest.fixture
def session_portal(idp_key_dir: Path) -> DevIdp:
    """A third IdP (not registered): its metadata is uploaded or written by the test."""
    from tests.conftest import test_sp_metadata

    return DevIdp(base_url="https://portal.example.net", state_dir=idp_key_dir,
                  sp_metadata=test_sp_metadata)

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
@pytest.mark.slow  # runs the CLI in a process
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


# --- one IdP per endpoint origin ----------------------------------------------------------------

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
VICTIM_SLO = "https://idp.example.org/slo/redirect"  # IdP dev's (the victim's) Single Logout


def _pointing(xml: bytes, url: str, *, service: str = "SingleLogoutService",
              attribute: str = "Location") -> bytes:
    """``xml`` (an IdP's metadata) with its HTTP-Redirect ``service`` at ``url``."""
    root = etree.fromstring(xml)
    element = root.find(f".//{{{MD}}}{service}[@Binding='{REDIRECT}']")
    assert element is not None
    element.set(attribute, url)
    return etree.tostring(root)


def _in_use(response, holder: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 409, response.get_data(as_text=True)
    problem = response.get_json()
    assert problem["code"] == "idp_endpoint_in_use"
    assert f"where IdP {holder} (" in problem["problems"][0]


@pytest.mark.parametrize("url", [
    VICTIM_SLO,                                      # the red-team's case: the very URL
    "https://idp.example.org/slo/elsewhere",         # another path on the victim's origin
    "https://IDP.example.org/slo/redirect",          # the same origin, spelt otherwise
    "https://idp.example.org:443/Slo/Redirect/",     # ... and again
])
def test_an_idp_cannot_name_another_idps_single_logout_origin(
        url: str, database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
        session_other_idp: DevIdp) -> None:
    """IdP B's metadata names IdP A's Single Logout service; B's login carries the NameID A's
    user has at A; `POST /logout` with `idp_logout=true` then answered with a LogoutRequest signed
    by our key, addressed to A, naming A's user, and A accepted it. Now such metadata stops
    start-up, naming both IdPs (and neither is served)."""
    (idp_dir / "other.xml").write_bytes(_pointing(session_other_idp.metadata_xml(), url))

    with pytest.raises(ConfigError) as caught:
        build_services(make_settings(database, idp_dir, tmp_path), SystemClock())

    assert caught.value.code == "idp_endpoint_in_use"
    assert any(p.startswith(f"{idp_dir / 'other.xml'}: SingleLogoutService Location {url} is "
                            "on https://idp.example.org:443, where IdP dev (the file dev.xml)")
               for p in caught.value.problems), caught.value.problems


def test_the_admin_api_refuses_an_idp_on_another_idps_single_logout_origin(
        api, acme: DevIdp, dev_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    attacks = [
        _pointing(acme.metadata_xml(), VICTIM_SLO),
        _pointing(acme.metadata_xml(), "https://idp.example.org/x", attribute="ResponseLocation"),
        # Its sign-on service on the victim's origin, where the victim's logout service is.
        _pointing(acme.metadata_xml(), "https://idp.example.org/sso", service="SingleSignOnService"),
    ]
    for xml in attacks:
        _in_use(_onboard(api, "other", xml), "dev")
        assert api("GET", "/admin/api/idps/other").status_code == 404
    # Proposed (uploaded or fetched) for an IdP in force: refused, nothing kept.
    assert _onboard(api, "other", acme.metadata_xml()).status_code == 201
    for xml in attacks:
        _in_use(api("POST", "/admin/api/idps/other/metadata", data=xml,
                    content_type="application/samlmetadata+xml"), "dev")
    assert len(api("GET", "/admin/api/idps/other/metadata/versions").get_json()["versions"]) == 1


def test_an_idp_cannot_be_rolled_back_or_applied_onto_an_origin_another_idp_took(
        api, session_portal: DevIdp, acme: DevIdp, dev_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """`other` leaves its origin; `portal` is onboarded there; the version of `other` on that
    origin (restored, or a pending one applied) would put both there again."""
    assert _onboard(api, "other", acme.metadata_xml()).status_code == 201
    first = api("GET", "/admin/api/idps/other/metadata/versions").get_json()["versions"][0]["id"]
    moved = acme.metadata_xml().replace(b"https://other-idp.example.net/s",
                                        b"https://moved.example.net/s")
    proposed = api("POST", "/admin/api/idps/other/metadata", data=moved,
                   content_type="application/samlmetadata+xml").get_json()
    assert api("POST", f"/admin/api/idps/other/metadata/versions/{proposed['version']}/apply"
               ).status_code == 200
    back = api("POST", "/admin/api/idps/other/metadata", data=acme.metadata_xml(),
               content_type="application/samlmetadata+xml").get_json()
    assert back["status"] == "pending"
    portal = session_portal.metadata_xml().replace(b"https://portal.example.net/s",
                                                   b"https://other-idp.example.net/s")
    assert _onboard(api, "portal", portal).status_code == 201

    _in_use(api("POST", f"/admin/api/idps/other/metadata/versions/{first}/restore"), "portal")
    _in_use(api("POST", f"/admin/api/idps/other/metadata/versions/{back['version']}/apply"),
            "portal")

    assert api("GET", "/admin/api/idps/other").get_json()["sso_url"].startswith(
        "https://moved.example.net/")


def test_start_up_refuses_a_file_on_the_single_logout_origin_of_an_api_idp(
        api, acme: DevIdp, database: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert _onboard(api, "other", acme.metadata_xml()).status_code == 201
    files = tmp_path / "other-node"
    files.mkdir()
    (files / "corp.xml").write_bytes(_pointing(
        acme.metadata_xml().replace(b"https://other-idp.example.net/metadata",
                                    b"https://corp.example.net/metadata"),
        "https://corp.example.net/slo"))  # its sign-on service is still on other's origin
    with pytest.raises(ConfigError) as caught:
        build_services(make_settings(database, files, tmp_path / "node"), SystemClock())
    assert caught.value.code == "idp_endpoint_in_use"
    assert (f"{files / 'corp.xml'}: SingleSignOnService Location "
            "https://other-idp.example.net/sso/redirect is on https://other-idp.example.net:443, "
            "where IdP other (managed through the admin API)") in str(caught.value)


def test_idps_already_stored_on_one_logout_origin_are_served_by_no_node(
        api, acme: DevIdp, session_portal: DevIdp, bridge: Services,  # type: ignore[no-untyped-def]  # noqa: F811
        client: FlaskClient) -> None:
    """A state from before the rule (or two admins at once): neither IdP is served, so no login
    through either makes us sign a logout for the other."""
    portal = _pointing(session_portal.metadata_xml(), "https://other-idp.example.net/slo")
    for version, (slug, xml) in enumerate((("other", acme.metadata_xml()), ("portal", portal)),
                                          start=1):
        with bridge.db.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO idp_metadata_versions (id, slug, xml, sha256, status, source, "
                "created_at, created_by, diff_json) VALUES (:id, :slug, :xml, '', 'applied', "
                "'upload', 0, 't', '{}')"), {"id": version, "slug": slug, "xml": xml.decode()})
            connection.execute(sa.text(
                "INSERT INTO idps (slug, version_id, settings_json, created_at, updated_at) "
                "VALUES (:slug, :id, '{}', 0, :id)"), {"slug": slug, "id": version})
    bridge.idps.invalidate()

    # Listed for their admins to mend, each marked as not served; logins refused below.
    listed = {i["slug"]: (i["served"], i["not_served_reason"])
              for i in api("GET", "/admin/api/idps").get_json()["idps"]}
    assert listed == {"dev": (True, None), "other": (False, "endpoint_clash"),
                      "portal": (False, "endpoint_clash")}
    # No test login can start through either, and the state says why.
    state = api("GET", "/admin/api/idps/portal/test-login").get_json()
    assert (state["start_url"], state["served"], state["not_served_reason"]) == (
        None, False, "endpoint_clash")
    assert api("GET", "/admin/api/idps/dev/test-login").get_json()["start_url"] is None  # a file
    for slug in ("other", "portal"):
        start = _authorize(client, slug)
        assert start.status_code == 302
        assert start.headers["Location"].startswith("http://127.0.0.1:8002/callback?error=")


def test_a_shared_origin_is_compared_by_url(
        database: Database, idp_dir: Path, tmp_path: Path, session_other_idp: DevIdp,
        session_portal: DevIdp) -> None:
    """Tenants of one multi-tenant service (listed in idp_shared_origins) each have their own
    endpoint URLs on its origin; the same URL is still refused."""
    tenant = b"https://login.example.com/"
    (idp_dir / "a.xml").write_bytes(session_other_idp.metadata_xml().replace(
        b"https://other-idp.example.net/", tenant + b"tenant-a/"))
    (idp_dir / "b.xml").write_bytes(session_portal.metadata_xml().replace(
        b"https://portal.example.net/", tenant + b"tenant-b/"))
    shared = make_settings(database, idp_dir, tmp_path,
                           idp_shared_origins=["https://login.example.com"])
    bridge = build_services(shared, SystemClock())
    try:
        assert sorted(bridge.idps) == ["a", "b"]
    finally:
        bridge.db.dispose()
    with pytest.raises(ConfigError) as caught:  # not listed: one origin, two IdPs
        build_services(make_settings(database, idp_dir, tmp_path), SystemClock())
    assert caught.value.code == "idp_endpoint_in_use"
    (idp_dir / "b.xml").write_bytes(_pointing(
        (idp_dir / "b.xml").read_bytes(), "https://login.example.com/tenant-a/slo/redirect"))
    with pytest.raises(ConfigError) as caught:  # listed, but the very URL of another tenant
        build_services(shared, SystemClock())
    assert "where IdP a (the file a.xml)" in str(caught.value)
