"""The admin API: who may call it (every route), IdP onboarding from uploaded metadata, preview
before apply, history and rollback, a certificate rollover with no failed login, settings
validation, changes seen by another node, tokens and the audit trail."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import insert, update

from bridge.admin.access import AdminAccess
from bridge.audit import audit_events
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.services import Services
from bridge.store.models import AuditEvent, IdpRecord
from bridge.web import create_app
from tests.attacks import xml_tools as x
from tests.conftest import MovableClock
from tests.helpers import Browser

ACME_ACS = "https://bridge.example.com/saml/other/acs"


@pytest.fixture
def token(bridge: Services) -> str:
    return AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("tests", expires_in=3600,
                                                              actor="test")[1]


@pytest.fixture
def api(client: FlaskClient, token: str):  # type: ignore[no-untyped-def]
    def call(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(path, method=method, headers=headers, **kwargs)
    return call


@pytest.fixture
def acme(session_other_idp: DevIdp) -> DevIdp:
    """An IdP that is not in idp_metadata/: it is added through the API under the slug other."""
    return session_other_idp


def _metadata_with(idp: DevIdp, *certificates: bytes) -> bytes:
    """The IdP's metadata with exactly these signing certificates (PEM)."""
    from lxml import etree

    root = etree.fromstring(idp.metadata_xml())
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    descriptor = root.find(f"{{{md}}}IDPSSODescriptor")
    template = descriptor.find(f"{{{md}}}KeyDescriptor")
    for key in descriptor.findall(f"{{{md}}}KeyDescriptor"):
        descriptor.remove(key)
    for index, pem in enumerate(certificates):
        key = etree.fromstring(etree.tostring(template))
        key.set("use", "signing")
        cert = key.find(f".//{{{x.DS}}}X509Certificate")
        cert.text = "".join(line for line in pem.decode().splitlines() if "CERTIFICATE" not in line)
        descriptor.insert(index, key)
    return etree.tostring(root)


def _new_keypair(tmp_path: Path) -> x.KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme rollover")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=400))
            .sign(key, hashes.SHA256()))
    return x.KeyPair(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()),
                     cert.public_bytes(serialization.Encoding.PEM))


def _login_at_acme(browser: Browser, acme: DevIdp, keys: x.KeyPair | None = None):  # type: ignore[no-untyped-def]
    """A login through the API-managed IdP; optionally signed with another key of its own."""
    response = browser.authorize(idp="other")
    assert response.status_code == 302, response.get_data(as_text=True)
    saml_request = parse_qs(urlsplit(response.headers["Location"]).query)["SAMLRequest"][0]
    pending = acme.parse_request(saml_request, None)
    saml_response = acme.response_for(pending, USERS["alice"])
    if keys is not None:
        saml_response = x.encode(x.resign(x.decode(saml_response), keys))
    return browser.post_acs(saml_response, "other")


def _create(api, acme: DevIdp, **settings: object):  # type: ignore[no-untyped-def]
    return api("POST", "/admin/api/idps", data={
        "slug": "other", "settings": json.dumps({"display_name": "Acme", **settings}),
        "metadata": (__import__("io").BytesIO(acme.metadata_xml()), "acme.xml")},
        content_type="multipart/form-data")


# --- who may call it --------------------------------------------------------------------------------

def _admin_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin/") and rule.endpoint.startswith("admin_api."):
            path = (rule.rule.replace("<slug>", "dev").replace("<int:version_id>", "1")
                    .replace("<token_id>", "x").replace("<test_id>", "x"))
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                routes.append((method, path))
    return routes


def test_every_admin_api_route_refuses_strangers(app: Flask, client: FlaskClient,
                                                 browser: Browser) -> None:
    user_token = browser.tokens()["access_token"]  # an ordinary user's access token
    routes = _admin_routes(app)
    assert len(routes) >= 20
    for method, path in routes:
        for headers in ({}, {"Authorization": f"Bearer {user_token}"},
                        {"Authorization": "Bearer bat_forged"}):
            response = client.open(path, method=method, headers={**headers,
                                                                  "Accept": "application/json"})
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.get_json()["code"] == "admin_unauthorized"


def test_every_admin_page_refuses_strangers(app: Flask, client: FlaskClient) -> None:
    public = {"admin_pages.login", "admin_pages.login_at", "admin_pages.callback"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin_pages.") or rule.endpoint in public:
            continue
        path = (rule.rule.replace("<slug>", "dev").replace("<int:version_id>", "1")
                .replace("<action>", "apply").replace("<test_id>", "x"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            assert response.status_code in (302, 303), (method, path)
            assert "/admin/login" in response.headers["Location"]


def test_every_admin_api_route_is_documented(app: Flask, api) -> None:  # type: ignore[no-untyped-def]
    document = api("GET", "/admin/openapi.json").get_json()
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin_api."):
            path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (method, path) in documented, (method, path)


def test_expired_and_revoked_tokens_are_refused(bridge: Services, client: FlaskClient,
                                                api) -> None:  # type: ignore[no-untyped-def]
    created = api("POST", "/admin/api/tokens", json={"name": "ci", "expires_in": 600})
    assert created.status_code == 201
    token_id, value = created.get_json()["id"], created.get_json()["token"]
    assert value.startswith("bat_")
    assert client.get("/admin/api/idps", headers={"Authorization": f"Bearer {value}"}).status_code == 200
    assert value not in json.dumps(api("GET", "/admin/api/tokens").get_json())
    assert api("DELETE", f"/admin/api/tokens/{token_id}").status_code == 204
    assert client.get("/admin/api/idps", headers={"Authorization": f"Bearer {value}"}).status_code == 401


# --- onboarding, preview, history ------------------------------------------------------------------

def test_add_an_idp_and_sign_in_through_it(api, acme: DevIdp, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    created = _create(api, acme)
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["source"] == "api" and body["entity_id"] == "https://other-idp.example.net/metadata"
    assert body["acs_url"] == ACME_ACS
    assert [v["status"] for v in body["versions"]] == ["applied"]
    signed_in = _login_at_acme(browser, acme)
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"].startswith("http://127.0.0.1:8002/callback?code=")
    listed = api("GET", "/admin/api/idps").get_json()["idps"]
    assert {i["slug"] for i in listed} == {"dev", "other"}
    health = {i["slug"]: i for i in listed}["other"]
    assert health.get("last_login_at")


def test_invalid_metadata_is_refused_and_nothing_changes(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    response = api("POST", "/admin/api/idps", json={
        "slug": "other", "metadata_xml": "<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:"
        "SAML:2.0:metadata' entityID='https://x'/>"})
    assert response.status_code == 422
    problems = response.get_json()["problems"]
    assert any("expected one md:IDPSSODescriptor, found 0" in p for p in problems)
    assert api("GET", "/admin/api/idps/other").status_code == 404
    bad_settings = _create(api, acme, clock_skew_seconds=900,
                           mapping={"claims": {"mail": {"from": ["x"]}}})
    assert bad_settings.status_code == 422
    text = " ".join(bad_settings.get_json()["problems"])
    assert "clock_skew_seconds" in text and "mapping.claims.mail" in text


def test_a_mapping_pattern_the_linear_engine_cannot_run_is_refused_when_saved(  # type: ignore[no-untyped-def]
        api, acme: DevIdp) -> None:
    backreference = {"roles": [{"regex": r"(\w+)-\1-admins", "role": "admin"}]}
    created = _create(api, acme, mapping=backreference)
    assert created.status_code == 422
    assert any(p.startswith("IdP other settings: mapping.roles[0].regex: not a valid regular "
                            "expression (backreferences") for p in created.get_json()["problems"])
    assert api("GET", "/admin/api/idps/other").status_code == 404  # nothing was stored
    assert _create(api, acme).status_code == 201
    lookahead = {"groups": {"deny": [{"regex": "(?=.*suspended).*"}]}}
    changed = api("PUT", "/admin/api/idps/other/settings", json={"mapping": lookahead})
    assert changed.status_code == 422
    assert any("mapping.groups.deny[0].regex: not a valid regular expression" in p
               for p in changed.get_json()["problems"])
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == {"display_name": "Acme"}


def test_authn_contexts_are_validated_when_saved_and_serve_at_once(  # type: ignore[no-untyped-def]
        api, acme: DevIdp) -> None:
    assert _create(api, acme).status_code == 201
    bad = {"authn_contexts": {"preset": "okta", "comparison": "maximum",
                              "levels": [{"acr": "mfa", "class_refs": "not a list"}]}}
    changed = api("PUT", "/admin/api/idps/other/settings", json=bad)
    assert changed.status_code == 422
    problems = changed.get_json()["problems"]
    assert "IdP other settings: authn_contexts.comparison: one of exact, minimum" in problems
    assert any("authn_contexts.levels[0].class_refs: must be a non-empty list" in p
               for p in problems)
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == {"display_name": "Acme"}
    good = {"display_name": "Acme", "authn_contexts": {"preset": "adfs"}}
    assert api("PUT", "/admin/api/idps/other/settings", json=good).status_code == 200
    discovery = api("GET", "/.well-known/openid-configuration").get_json()
    assert discovery["acr_values_supported"] == ["mfa", "pwd", "windows"]  # adfs adds one


def _settings_changes(bridge: Services) -> list[dict[str, object]]:
    return [event["detail"] for event in audit_events(bridge.db, limit=200)
            if event["event"] == "idp_settings_changed"]


def test_a_settings_write_with_a_stale_if_match_saves_nothing(  # type: ignore[no-untyped-def]
        api, acme: DevIdp, bridge: Services) -> None:
    """Two scripts read the settings, each changes one field and writes them back: the second,
    made from settings that are no longer stored, is refused instead of undoing the first."""
    assert _create(api, acme).status_code == 201
    read = api("GET", "/admin/api/idps/other/settings")
    assert read.status_code == 200
    etag = read.headers["ETag"]
    assert etag == f'"{read.get_json()["settings_fingerprint"]}"'
    assert read.get_json()["settings"] == {"display_name": "Acme"}
    first = api("PUT", "/admin/api/idps/other/settings", headers={"If-Match": etag},
                json={"display_name": "Acme", "clock_skew_seconds": 30})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.headers["ETag"] not in (etag, None)
    assert first.headers["ETag"] == api("GET", "/admin/api/idps/other/settings").headers["ETag"]
    second = api("PUT", "/admin/api/idps/other/settings", headers={"If-Match": etag},
                 json={"display_name": "Acme Corp"})
    assert second.status_code == 412
    assert second.get_json()["code"] == "settings_changed"
    assert "nothing was saved" in second.get_json()["problems"][0]
    stored = api("GET", "/admin/api/idps/other").get_json()["settings"]
    assert stored == {"display_name": "Acme", "clock_skew_seconds": 30}
    assert len(_settings_changes(bridge)) == 1  # only the first write was made, and audited


def test_a_put_answers_the_etag_of_what_it_wrote_though_another_save_follows_at_once(  # type: ignore[no-untyped-def]
        api, acme: DevIdp, bridge: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Admin B saves just after admin A's write commits, before A's answer is made: A's ETag
    must still name A's settings, or A's next write from them would undo B's unrefused."""
    assert _create(api, acme).status_code == 201
    etag = api("GET", "/admin/api/idps/other/settings").headers["ETag"]
    invalidate = bridge.idps.invalidate
    saved: list[bool] = []

    def another_save_right_after(*args: object) -> None:
        # Called as A's write has committed, before A's answer is read.
        if not saved:
            saved.append(True)
            with bridge.db.transaction() as session:
                session.execute(update(IdpRecord).where(IdpRecord.slug == "other").values(
                    settings_json=json.dumps({"clock_skew_seconds": 99,
                                              "display_name": "Set by B"}, sort_keys=True)))
        invalidate()

    monkeypatch.setattr(bridge.idps, "invalidate", another_save_right_after)
    written = api("PUT", "/admin/api/idps/other/settings", headers={"If-Match": etag},
                  json={"display_name": "Set by A"})
    monkeypatch.setattr(bridge.idps, "invalidate", invalidate)
    assert written.status_code == 200 and saved
    assert written.get_json()["settings"] == {"display_name": "Set by A"}
    assert written.headers["ETag"] == f'"{written.get_json()["settings_fingerprint"]}"'
    again = api("PUT", "/admin/api/idps/other/settings",
                headers={"If-Match": written.headers["ETag"]},
                json={"display_name": "Set by A", "clock_skew_seconds": 5})
    assert again.status_code == 412
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == {
        "display_name": "Set by B", "clock_skew_seconds": 99}


def test_if_match_is_judged_as_http_says(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    assert _create(api, acme).status_code == 201
    etag = api("GET", "/admin/api/idps/other/settings").headers["ETag"]

    def put(if_match: str, body: object) -> Any:
        return api("PUT", "/admin/api/idps/other/settings", headers={"If-Match": if_match},
                   json=body)

    # Strong comparison: the weak form of the current tag matches nothing.
    assert put(f"W/{etag}", {"display_name": "Weak"}).status_code == 412
    # The precondition comes before the body: a stale write of invalid settings is a 412.
    assert put('"0000"', {"clock_skew_seconds": "soon"}).status_code == 412
    empty = put("", {"display_name": "Empty"})
    assert empty.status_code == 422 and empty.get_json()["code"] == "if_match_invalid"
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == {"display_name": "Acme"}
    # Any of several tags; then * (any stored settings).
    listed = put(f'"0000", {etag}', {"display_name": "Listed"})
    assert listed.status_code == 200
    assert put("*", {"display_name": "Any"}).status_code == 200
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == {"display_name": "Any"}
    # Whatever the precondition, an unknown IdP is a 404 and a file IdP's settings a 409.
    assert api("PUT", "/admin/api/idps/nobody/settings", headers={"If-Match": etag},
               json={}).status_code == 404
    assert api("GET", "/admin/api/idps/nobody/settings").status_code == 404
    assert api("PUT", "/admin/api/idps/dev/settings", headers={"If-Match": etag},
               json={"clock_skew_seconds": 10}).status_code == 409


def test_file_idps_cannot_be_changed_through_the_api(api) -> None:  # type: ignore[no-untyped-def]
    response = api("PUT", "/admin/api/idps/dev/settings", json={"clock_skew_seconds": 10})
    assert response.status_code == 409
    assert "declared as a file" in response.get_json()["problems"][0]


def test_certificate_rollover_with_no_failed_login(api, acme: DevIdp, browser: Browser,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    assert _create(api, acme).status_code == 201
    old = x.load_keypair(acme.state_dir)
    new = _new_keypair(tmp_path)
    # 1. The IdP publishes its next key beside the current one: an addition, applied at once.
    added = api("POST", "/admin/api/idps/other/metadata", data=_metadata_with(
        acme, old.cert_pem, new.cert_pem), content_type="application/samlmetadata+xml").get_json()
    assert added["status"] == "applied"
    assert len(added["diff"]["certificates_added"]) == 1 and not added["diff"]["certificates_removed"]
    assert _login_at_acme(browser, acme).status_code == 302          # still signing with the old key
    assert _login_at_acme(browser, acme, new).status_code == 302     # and now with the new one
    # 2. It drops the old key: a removal waits for a person.
    proposed = api("POST", "/admin/api/idps/other/metadata", data=_metadata_with(
        acme, new.cert_pem), content_type="application/samlmetadata+xml").get_json()
    assert proposed["status"] == "pending"
    assert len(proposed["diff"]["certificates_removed"]) == 1
    assert _login_at_acme(browser, acme).status_code == 302          # old key still trusted
    applied = api("POST", f"/admin/api/idps/other/metadata/versions/{proposed['version']}/apply")
    assert applied.status_code == 200
    assert _login_at_acme(browser, acme, new).status_code == 302
    refused = _login_at_acme(browser, acme)
    assert refused.status_code == 400 and refused.get_json()["code"] == "saml_signature_invalid"
    # 3. Roll back to the version with both keys.
    versions = api("GET", "/admin/api/idps/other/metadata/versions").get_json()["versions"]
    both = next(v for v in versions if len(v["diff"]["certificates_added"]) == 1
                and not v["diff"]["certificates_removed"] and v["source"] == "upload")
    restored = api("POST", f"/admin/api/idps/other/metadata/versions/{both['id']}/restore")
    assert restored.status_code == 200
    assert _login_at_acme(browser, acme).status_code == 302
    history = api("GET", "/admin/api/idps/other/metadata/versions").get_json()["versions"]
    assert [v["status"] for v in history][:1] == ["applied"] and len(history) == 4
    assert history[0]["diff"]["restored_from"] == both["id"]
    events = [e["event"] for e in api("GET", "/admin/api/audit?limit=50").get_json()["events"]]
    assert {"idp_created", "idp_metadata_proposed", "idp_metadata_applied"} <= set(events)


def test_settings_change_is_audited_with_before_and_after(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    _create(api, acme)
    changed = api("PUT", "/admin/api/idps/other/settings",
                  json={"display_name": "Acme Corp", "clock_skew_seconds": 30})
    assert changed.status_code == 200 and changed.get_json()["display_name"] == "Acme Corp"
    event = next(e for e in api("GET", "/admin/api/audit").get_json()["events"]
                 if e["event"] == "idp_settings_changed")
    assert event["detail"]["before"] == {"display_name": "Acme"}
    assert event["detail"]["after"] == {"display_name": "Acme Corp", "clock_skew_seconds": 30}
    assert event["detail"]["actor"] == "token:tests"


def test_a_change_on_one_node_is_in_force_on_another(api, acme: DevIdp, bridge: Services,  # type: ignore[no-untyped-def]
                                                     settings) -> None:
    clock = MovableClock()
    other_app = create_app(settings, clock=clock)  # its own Bridge, same database
    other_node = other_app.test_client()
    recheck_seconds = other_app.extensions["bridge"].idps.recheck_seconds
    try:
        assert other_node.get("/saml/metadata").data.count(b"/saml/other/acs") == 0
        _create(api, acme)
        clock.advance(recheck_seconds)  # the registry's recheck interval passes
        assert b"/saml/other/acs" in other_node.get("/saml/metadata").data
        api("DELETE", "/admin/api/idps/other")
        clock.advance(recheck_seconds)
        assert other_node.get("/saml/metadata").data.count(b"/saml/other/acs") == 0
    finally:
        other_app.extensions["bridge"].db.dispose()


def test_sp_metadata_presets_preview_and_revocations(api, acme: DevIdp, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    _create(api, acme)
    sp = api("GET", "/admin/api/idps/other/sp-metadata")
    assert sp.status_code == 200 and ACME_ACS.encode() in sp.data
    assert b"/saml/dev/acs" not in sp.data
    presets = {p["name"] for p in api("GET", "/admin/api/presets").get_json()["presets"]}
    assert presets == {"adfs", "entra", "okta", "google", "shibboleth", "keycloak"}
    preview = api("POST", "/admin/api/idps/other/claims-preview", json={
        "name_id": "u-1", "attributes": {"groups": ["app-admins"], "mail": ["a@example.com"]},
        "mapping": {"roles": [{"exact": "app-admins", "role": "admin"}]}}).get_json()
    assert preview["in_force"]["v2"]["claims"]["roles"] == []
    assert preview["proposed"]["v2"]["claims"]["roles"] == ["admin"]
    tokens = browser.tokens()
    revoked = api("POST", "/admin/api/revocations", json={"idp": "dev"})
    assert revoked.get_json() == {"revoked": 1}
    assert browser.refresh(tokens["refresh_token"]).status_code == 400


TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


def test_claims_preview_refuses_what_a_login_refuses(api, acme: DevIdp,  # type: ignore[no-untyped-def]
                                                     browser: Browser) -> None:
    _create(api, acme)
    # A response whose NameID is transient, signed by the IdP itself, and no subject_attribute.
    response = browser.authorize(idp="other")
    saml_request = parse_qs(urlsplit(response.headers["Location"]).query)["SAMLRequest"][0]
    root = x.decode(acme.response_for(acme.parse_request(saml_request, None), USERS["alice"]))
    x.one(root, "//saml:Subject/saml:NameID").set("Format", TRANSIENT)
    transient_response = x.encode(x.resign(root, x.load_keypair(acme.state_dir)))

    login = browser.post_acs(transient_response, "other")
    assert login.status_code == 400 and login.get_json()["code"] == "saml_subject_transient"
    preview = api("POST", "/admin/api/idps/other/claims-preview",
                  json={"saml_response": transient_response})
    assert preview.status_code == 200
    body = preview.get_json()
    assert (body["outcome"], body["code"]) == ("refused", "saml_subject_transient")
    assert "sub" not in body and "in_force" not in body  # no identity, so no claims
    assert body["attributes"]["urn:oid:0.9.2342.19200300.100.1.3"] == ["alice@example.com"]
    typed = api("POST", "/admin/api/idps/other/claims-preview", json={
        "name_id": "t-8c1f", "name_id_format": TRANSIENT, "attributes": {"mail": ["a@x.example"]}})
    assert typed.get_json()["code"] == "saml_subject_transient"
    assert api("POST", "/admin/api/idps/other/claims-preview", json={
        "attributes": {"mail": ["a@x.example"]}}).get_json()["code"] == "saml_subject_missing"

    # With a subject attribute, it must be there exactly once, as at a login.
    api("PUT", "/admin/api/idps/other/settings",
        json={"display_name": "Acme", "subject_attribute": "employeeNumber"})
    several = api("POST", "/admin/api/idps/other/claims-preview", json={
        "name_id": "t-8c1f", "name_id_format": TRANSIENT,
        "attributes": {"employeeNumber": ["1001", "1002"]}}).get_json()
    assert (several["outcome"], several["code"]) == ("refused", "saml_subject_missing")
    single = api("POST", "/admin/api/idps/other/claims-preview", json={
        "name_id": "t-8c1f", "name_id_format": TRANSIENT,
        "attributes": {"employeeNumber": ["1001"]}}).get_json()
    assert single["outcome"] == "accepted" and single["in_force"]["v1"]["claims"]["sub"]


def test_claims_preview_reads_the_name_id_exactly_as_a_login_does(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    _create(api, acme)

    def sub(name_id: str) -> str:
        body = api("POST", "/admin/api/idps/other/claims-preview",
                   json={"name_id": name_id, "attributes": {"mail": ["a@x.example"]}}).get_json()
        assert body["outcome"] == "accepted", body
        return str(body["in_force"]["v1"]["claims"]["sub"])

    assert sub(" ceo") != sub("ceo")  # as two logins with these NameIDs get two subjects
    blank = api("POST", "/admin/api/idps/other/claims-preview",
                json={"name_id": "   ", "attributes": {"mail": ["a@x.example"]}}).get_json()
    assert (blank["outcome"], blank["code"]) == ("refused", "saml_subject_missing")


def test_session_changes_need_the_csrf_token(bridge: Services, client: FlaskClient) -> None:
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    session_id = access.claim_ticket(access.issue_ticket(subject="s", name="Alice", idp_slug="dev"))
    assert session_id is not None
    client.set_cookie("__Host-bridge-admin", session_id)
    assert client.get("/admin/api/idps").status_code == 200  # reading needs no token
    refused = client.post("/admin/api/tokens", json={"name": "x"},
                          headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.get_json()["code"] == "admin_csrf_invalid"
    csrf = access.authenticate_session(session_id).csrf_token  # type: ignore[union-attr]
    for wrong in ("\xe9", csrf[:-1] + "\xe9"):  # any byte is a wrong token, not a server error
        refused = client.post("/admin/api/tokens", json={"name": "x"},
                              headers={"X-CSRF-Token": wrong})
        assert refused.status_code == 403 and refused.get_json()["code"] == "admin_csrf_invalid"
    allowed = client.post("/admin/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert allowed.status_code == 201
    # A ticket is not a session, and a session id is not a ticket.
    assert access.claim_ticket(session_id) is None


def _code_at_acme(browser: Browser, acme: DevIdp) -> tuple[str, str]:
    """A login through the API-managed IdP up to the authorization code: (code, verifier)."""
    response = browser.authorize(idp="other")
    saml_request = parse_qs(urlsplit(response.headers["Location"]).query)["SAMLRequest"][0]
    answer = browser.post_acs(acme.response_for(acme.parse_request(saml_request, None),
                                                USERS["alice"]), "other")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    return code, response.verifier  # type: ignore[attr-defined]


def test_deleting_an_idp_ends_its_logins_and_spends_its_codes(api, acme: DevIdp,  # type: ignore[no-untyped-def]
                                                              browser: Browser) -> None:
    assert _create(api, acme).status_code == 201
    tokens = browser.exchange(*_code_at_acme(browser, acme))
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    pending_code, pending_verifier = _code_at_acme(browser, acme)
    dev_tokens = browser.tokens()  # a login through another IdP, which must survive

    assert api("DELETE", "/admin/api/idps/other").status_code == 204

    refreshed = browser.refresh(tokens.get_json()["refresh_token"])
    assert (refreshed.status_code, refreshed.get_json()["error"]) == (400, "invalid_grant")
    late = browser.exchange(pending_code, pending_verifier)
    assert (late.status_code, late.get_json()["error"]) == (400, "invalid_grant")
    assert browser.refresh(dev_tokens["refresh_token"]).status_code == 200


def test_odd_values_in_admin_requests_are_clear_errors(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    for expires_in in ([1], "soon", None, True):
        made = api("POST", "/admin/api/tokens", json={"name": "x", "expires_in": expires_in})
        assert made.status_code == 422, (expires_in, made.get_data(as_text=True))
    # A validUntil that lies past year 9999 once turned into UTC.
    xml = acme.metadata_xml().replace(b"<ns0:EntityDescriptor ",
                                      b'<ns0:EntityDescriptor validUntil="9999-12-31T23:59:59-14:00" ', 1)
    assert b"9999-12-31" in xml
    created = api("POST", "/admin/api/idps", data={
        "slug": "other", "settings": json.dumps({"display_name": "Acme"}),
        "metadata": (__import__("io").BytesIO(xml), "acme.xml")}, content_type="multipart/form-data")
    assert created.status_code in (400, 422), created.get_data(as_text=True)
    assert "validUntil" in created.get_data(as_text=True)


def test_request_signing_settings_are_validated_and_shape_the_idps_sp_metadata(  # type: ignore[no-untyped-def]
        api, acme: DevIdp) -> None:
    # acme's metadata offers the HTTP-Redirect binding only: "post" cannot be honoured.
    refused = _create(api, acme, authn_request_binding="post")
    assert refused.status_code == 422
    assert any('authn_request_binding is "post"' in p for p in refused.get_json()["problems"])
    assert api("GET", "/admin/api/idps/other").status_code == 404  # nothing was stored
    assert _create(api, acme, sign_requests="always").status_code == 201
    sp = api("GET", "/admin/api/idps/other/sp-metadata").data
    assert b'AuthnRequestsSigned="true"' in sp and b'KeyDescriptor use="signing"' in sp
    wrong = api("PUT", "/admin/api/idps/other/settings", json={"sign_requests": "sometimes"})
    assert wrong.status_code == 422
    assert api("PUT", "/admin/api/idps/other/settings",
               json={"sign_requests": "never"}).status_code == 200
    assert b'AuthnRequestsSigned="false"' in api("GET", "/admin/api/idps/other/sp-metadata").data


# --- audit details: bounded for refusals, whole for admins' changes, readable by every reader --------

def test_a_refusal_with_a_huge_detail_is_recorded_cut_and_the_trail_stays_readable(
        browser: Browser, api) -> None:  # type: ignore[no-untyped-def]
    # The person's own signed assertion, re-wrapped in an unsigned Response whose Destination
    # (which the refusal's detail names) is 9,000 characters long.
    login = browser.start()
    signed = browser.idp.response_for(login.pending, USERS["alice"], sign_response=False)
    root = etree.fromstring(base64.b64decode(signed))
    root.set("Destination", "https://bridge.example.com/" + "a" * 9000)
    refused = browser.post_acs(base64.b64encode(etree.tostring(root)).decode())
    assert refused.get_json()["code"] == "saml_destination_mismatch"

    trail = api("GET", "/admin/api/audit")
    assert trail.status_code == 200
    event = next(e for e in trail.get_json()["events"]
                 if e["code"] == "saml_destination_mismatch")
    assert event["detail"]["detail_cut"] is True
    assert len(json.dumps(event["detail"])) <= 8000
    assert all(len(value) <= 200 for value in event["detail"].values()
               if isinstance(value, str))


def test_large_settings_are_audited_whole_and_restore_as_they_were(
        api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    assert _create(api, acme).status_code == 201
    big = {"display_name": "Acme " + "x" * 9000}
    assert api("PUT", "/admin/api/idps/other/settings", json=big).status_code == 200
    assert api("GET", "/admin/api/audit").status_code == 200
    assert api("DELETE", "/admin/api/idps/other",
               json={"confirm_slug": "other"}).status_code == 204
    listed = api("GET", "/admin/api/deleted-idps")
    assert listed.status_code == 200
    assert listed.get_json()["idps"][0]["display_name"] == big["display_name"]
    restored = api("POST", "/admin/api/deleted-idps/other/restore")
    assert restored.status_code == 200, restored.get_data(as_text=True)
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == big


def test_an_event_stored_cut_by_an_earlier_version_is_read_as_such(
        api, bridge: Services) -> None:  # type: ignore[no-untyped-def]
    cut = json.dumps({"actor": "user:x", "settings": {"display_name": "y" * 9000}})[:8000]
    with bridge.db.transaction() as session:
        session.execute(insert(AuditEvent).values(
            at=bridge.clock.now(), event="idp_deleted", outcome="success", idp_slug="gone",
            detail_json=cut))
    trail = api("GET", "/admin/api/audit")
    assert trail.status_code == 200
    assert {"detail_unreadable": True} in [e["detail"] for e in trail.get_json()["events"]]
    listed = api("GET", "/admin/api/deleted-idps")
    assert listed.status_code == 200
    assert {"slug": "gone", "display_name": "gone"}.items() <= listed.get_json()["idps"][0].items()
    refused = api("POST", "/admin/api/deleted-idps/gone/restore")
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "idp_not_restorable"


def test_a_preset_that_is_not_a_name_is_refused_not_a_500(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]
    assert _create(api, acme).status_code == 201
    for preset in (["okta"], {"okta": 1}, 5):
        saved = api("PUT", "/admin/api/idps/other/settings",
                    json={"display_name": "Acme", "mapping": {"preset": preset}})
        assert saved.status_code == 422, (preset, saved.get_data(as_text=True))
        assert "unknown preset" in saved.get_data(as_text=True)
