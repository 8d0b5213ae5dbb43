"""Certificate additions apply at once, as documented, while everything else the same upload
changes waits for a person; and never more than the certificates."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bridge.dev.saml_idp import DevIdp
from tests.attacks import xml_tools as x
from tests.helpers import Browser
from tests.test_admin_api import _create, _login_at_acme, _metadata_with, _new_keypair, acme, api, token  # noqa: F401  (fixtures)

MOVED_SSO = "https://sso.acme.example/saml2/redirect"


def _upload(api, document: bytes):  # type: ignore[no-untyped-def]  # noqa: F811
    response = api("POST", "/admin/api/idps/other/metadata", data=document,
                   content_type="application/samlmetadata+xml")
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()


def _sso_in_force(browser: Browser) -> str:
    location = browser.authorize(idp="other").headers["Location"]
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def test_a_new_certificate_applies_at_once_while_a_moved_sso_url_waits(  # type: ignore[no-untyped-def]
        api, acme: DevIdp, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    assert _create(api, acme).status_code == 201
    old_sso = _sso_in_force(browser)
    old, new = x.load_keypair(acme.state_dir), _new_keypair(tmp_path)
    both_and_moved = _metadata_with(acme, old.cert_pem, new.cert_pem).replace(
        old_sso.encode(), MOVED_SSO.encode())

    outcome = _upload(api, both_and_moved)

    assert outcome["status"] == "pending"
    assert outcome["diff"]["changed"]["sso_redirect_url"]["to"] == MOVED_SSO
    split = outcome["certificates_applied"]
    assert _login_at_acme(browser, acme, new).status_code == 302   # the new key, at once
    assert _login_at_acme(browser, acme).status_code == 302        # the old one too
    assert _sso_in_force(browser) == old_sso                      # the SSO URL waits
    versions = {v["id"]: v for v in api("GET", "/admin/api/idps/other/metadata/versions")
                .get_json()["versions"]}
    assert versions[split]["in_force"] and versions[split]["source"] == "certificates"
    assert versions[split]["diff"]["only_certificate_additions"]
    assert versions[split]["diff"]["certificates_from"] == outcome["version"]
    assert versions[outcome["version"]]["status"] == "pending"
    assert versions[outcome["version"]]["diff"]["certificates_applied_as"] == split

    applied = api("POST", f"/admin/api/idps/other/metadata/versions/{outcome['version']}/apply")

    assert applied.status_code == 200
    assert _sso_in_force(browser) == MOVED_SSO


def test_nothing_applies_by_itself_under_the_none_policy(  # type: ignore[no-untyped-def]
        api, acme: DevIdp, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    assert _create(api, acme, metadata_auto_apply="none").status_code == 201
    old, new = x.load_keypair(acme.state_dir), _new_keypair(tmp_path)
    outcome = _upload(api, _metadata_with(acme, old.cert_pem, new.cert_pem).replace(
        _sso_in_force(browser).encode(), MOVED_SSO.encode()))
    assert outcome["status"] == "pending" and "certificates_applied" not in outcome
    refused = _login_at_acme(browser, acme, new)
    assert refused.status_code == 400 and refused.get_json()["code"] == "saml_signature_invalid"


def test_a_certificate_under_another_entity_id_is_not_split_off(  # type: ignore[no-untyped-def]
        api, acme: DevIdp, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    """Keys that come with a new entity ID are another IdP's: they wait with the rest."""
    assert _create(api, acme).status_code == 201
    old, new = x.load_keypair(acme.state_dir), _new_keypair(tmp_path)
    renamed = _metadata_with(acme, old.cert_pem, new.cert_pem).replace(
        f'entityID="{acme.entity_id}"'.encode(), b'entityID="https://attacker.example/idp"')
    outcome = _upload(api, renamed)
    assert outcome["status"] == "pending" and "certificates_applied" not in outcome
    refused = _login_at_acme(browser, acme, new)
    assert refused.status_code == 400 and refused.get_json()["code"] == "saml_signature_invalid"
