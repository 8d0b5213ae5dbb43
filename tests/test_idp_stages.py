"""Onboarding in the order IdPs require it, through the admin pages: a draft shows our values
under the vendor's names before the IdP's metadata exists; the IdP is not offered to users until
an admin has seen a passing test login or explicitly goes live without one; deleting asks for the
slug, and a deleted IdP comes back from history."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree, html
from sqlalchemy import select

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.errors import SamlRejected
from bridge.services import Services
from bridge.store.models import AuditEvent, AuthorizationCode, RefreshFamily, TestLogin
from tests.attacks import xml_tools as x
from tests.helpers import Browser
from tests.test_admin_api import _metadata_with, _new_keypair

SLUG = "other"  # the slug the second test IdP knows our ACS URL under


class Admin:
    def __init__(self, client: FlaskClient, bridge: Services) -> None:
        access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
        session_id = access.claim_ticket(access.issue_ticket(subject="a-1", name="Alice",
                                                             idp_slug="dev"))
        assert session_id is not None
        client.set_cookie("__Host-bridge-admin", session_id)
        admin = access.authenticate_session(session_id)
        assert admin is not None and admin.csrf_token
        self.client, self.csrf = client, admin.csrf_token

    def post(self, path: str, **data: object):  # type: ignore[no-untyped-def]
        return self.client.post(path, data={"csrf_token": self.csrf, **data},
                                content_type="multipart/form-data")

    def page(self, path: str) -> html.HtmlElement:
        response = self.client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return html.fromstring(response.get_data(as_text=True))

    def draft(self, vendor: str = "okta", slug: str = SLUG) -> None:
        created = self.post("/admin/idps/new", slug=slug, display_name="Contoso", preset=vendor)
        assert created.status_code == 303, created.get_data(as_text=True)
        assert urlsplit(created.headers["Location"]).path == f"/admin/idps/{slug}"

    def add_metadata(self, idp: DevIdp, slug: str = SLUG):  # type: ignore[no-untyped-def]
        return self.post(f"/admin/idps/{slug}/metadata",
                         metadata=(io.BytesIO(idp.metadata_xml()), "idp.xml"))


@pytest.fixture
def admin(client: FlaskClient, bridge: Services) -> Admin:
    return Admin(client, bridge)


def _sha256(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def _row(page: html.HtmlElement, label: str) -> str:
    [row] = page.xpath("//table[@id='vendor-fields']//tr[@data-label=$label]", label=label)
    return "".join(row.xpath(".//code[@class='value']/text()"))


@pytest.mark.parametrize("vendor,fields", [
    ("okta", {"Single sign-on URL": "acs", "Audience URI (SP Entity ID)": "entity"}),
    ("entra", {"Identifier (Entity ID)": "entity",
               "Reply URL (Assertion Consumer Service URL)": "acs"}),
    ("adfs", {"Relying party trust identifier": "entity",
              "Endpoints: SAML Assertion Consumer, binding POST, trusted URL": "acs"}),
    ("google", {"ACS URL": "acs", "Entity ID": "entity"}),
    ("shibboleth", {"entityID of the relying party": "entity"}),
    ("keycloak", {"Client ID": "entity", "Valid redirect URIs": "acs"}),
])
def test_a_draft_shows_our_values_under_the_vendors_names(
        admin: Admin, bridge: Services, vendor: str, fields: dict[str, str]) -> None:
    admin.draft(vendor)
    response = admin.client.get(f"/admin/idps/{SLUG}")
    page = html.fromstring(response.get_data(as_text=True))
    ours = {"acs": bridge.settings.acs_url(SLUG), "entity": bridge.settings.sp_entity_id}
    for label, which in fields.items():
        assert _row(page, label) == ours[which], label
    assert page.get_element_by_id("our-entity-id").text == bridge.settings.sp_entity_id
    assert page.get_element_by_id("state").text.startswith("Draft: not offered to users")
    assert page.xpath("//button[@class='copy']/@data-copy")  # each value has its copy button
    # The page's scripts are the copy buttons' and the settings form's, which the page's policy
    # allows by their hashes, and no other.
    policy = response.headers["Content-Security-Policy"]
    allowed = policy.split("script-src ")[1].split(";")[0].split()
    [settings_script] = page.xpath("//script[@src]")
    [copy_script] = page.xpath("//script[not(@src)]")
    assert allowed == [f"'{_sha256(copy_script.text.encode())}'",
                       f"'{settings_script.get('integrity')}'"]
    served = admin.client.get(settings_script.get("src"))
    assert served.status_code == 200 and served.mimetype == "text/javascript"
    assert _sha256(served.data) == settings_script.get("integrity")


def test_our_sp_metadata_is_there_for_a_draft_by_url_and_download(
        admin: Admin, bridge: Services, client: FlaskClient) -> None:
    admin.draft("entra")
    url = admin.page(f"/admin/idps/{SLUG}").get_element_by_id("sp-metadata-url").text
    assert url == f"{bridge.settings.base_url}/saml/{SLUG}/metadata"
    client.delete_cookie("__Host-bridge-admin")
    public = client.get(urlsplit(url).path)  # what Entra ID or AD FS reads, without a session
    assert public.status_code == 200
    root = etree.fromstring(public.data)
    assert root.get("entityID") == bridge.settings.sp_entity_id
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    assert [e.get("Location") for e in root.iter(f"{{{md}}}AssertionConsumerService")] == [
        bridge.settings.acs_url(SLUG)]
    assert client.get("/saml/nobody/metadata").status_code == 404


def _test_login(admin: Admin, browser: Browser, idp: DevIdp) -> html.HtmlElement:
    started = admin.client.get(f"/admin/idps/{SLUG}/test-login")
    assert started.status_code == 302, started.get_data(as_text=True)
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answered = browser.post_acs(idp.response_for(idp.parse_request(saml_request, None),
                                                 USERS["bob"]), SLUG, json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    return admin.page(urlsplit(answered.headers["Location"]).path)


def _user_login(browser: Browser, idp: DevIdp):  # type: ignore[no-untyped-def]
    """A user's login through the IdP: the answer of /authorize when it does not send the
    browser to the IdP, else the answer of the ACS."""
    response = browser.authorize(idp=SLUG)
    if "SAMLRequest=" not in response.headers.get("Location", ""):
        return response
    saml_request = parse_qs(urlsplit(response.headers["Location"]).query)["SAMLRequest"][0]
    return browser.post_acs(idp.response_for(idp.parse_request(saml_request, None),
                                             USERS["alice"]), SLUG)


def _refused_as_unknown(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.get_data(as_text=True)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error_description"] == ["Unknown idp."], query


def _events(bridge: Services, name: str) -> list[dict]:
    with bridge.db.transaction() as session:
        return [json.loads(e.detail_json) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event == name, AuditEvent.idp_slug == SLUG))]


def test_an_idp_is_offered_to_users_only_after_a_passing_test_login(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    idp = session_other_idp  # it sends eduPerson (urn:oid:) attribute names
    admin.draft("shibboleth")
    assert admin.add_metadata(idp).status_code == 303
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.get_element_by_id("stage").get("data-state") == "testing"
    assert page.get_element_by_id("idp-entity-id").text == idp.entity_id

    # Not offered: /authorize answers as for an unknown IdP, and nothing is issued.
    _refused_as_unknown(_user_login(browser, idp))
    assert browser.issued_nothing()
    assert b"Contoso" not in admin.client.get("/admin/login").data  # nor for admin sign-in
    # Going live before a test login has passed is refused, and changes nothing.
    early = admin.post(f"/admin/idps/{SLUG}/go-live")
    assert early.status_code == 422 and b"no test login has passed" in early.data
    assert admin.page(f"/admin/idps/{SLUG}").get_element_by_id("stage").get("data-state") == "testing"

    result = _test_login(admin, browser, idp)
    assert "Accepted" in result.get_element_by_id("test-outcome").text
    # A test login issues nothing (its assertion is used up, as every assertion is) ...
    assert browser.count(AuthorizationCode) == browser.count(RefreshFamily) == 0
    # ... and offers the IdP to nobody.
    _refused_as_unknown(_user_login(browser, idp))

    live = admin.post(f"/admin/idps/{SLUG}/go-live")
    assert live.status_code == 303
    assert admin.page(f"/admin/idps/{SLUG}").get_element_by_id("stage").get("data-state") == "live"
    signed_in = _user_login(browser, idp)
    assert signed_in.status_code == 302 and "code=" in signed_in.headers["Location"]
    [went_live] = _events(bridge, "idp_went_live")
    assert went_live["tested"] is True and went_live["without_test"] is False
    assert went_live["actor"] == "user:a-1 (Alice)"


def test_a_change_after_the_test_needs_a_new_test(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, tmp_path: Path) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    _test_login(admin, browser, session_other_idp)
    changed = _metadata_with(session_other_idp,
                             x.load_keypair(session_other_idp.state_dir).cert_pem,
                             _new_keypair(tmp_path).cert_pem)
    assert admin.post(f"/admin/idps/{SLUG}/metadata",
                      metadata=(io.BytesIO(changed), "idp.xml")).status_code == 303
    refused = admin.post(f"/admin/idps/{SLUG}/go-live")
    assert refused.status_code == 422 and b"no test login has passed" in refused.data


def test_going_live_without_a_test_is_explicit_and_audited(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    assert admin.post(f"/admin/idps/{SLUG}/go-live", without_test="yes").status_code == 303
    [went_live] = _events(bridge, "idp_went_live")
    assert went_live == {"actor": "user:a-1 (Alice)", "version": went_live["version"],
                         "tested": False, "without_test": True}
    assert _user_login(browser, session_other_idp).status_code == 302


def test_a_test_login_whose_claims_would_be_refused_does_not_pass(
        admin: Admin, browser: Browser, session_other_idp: DevIdp) -> None:
    admin.draft("okta")  # Okta's e-mail falls back to the NameID, which is no address here
    admin.add_metadata(session_other_idp)
    result = _test_login(admin, browser, session_other_idp)
    assert "Accepted" in result.get_element_by_id("test-outcome").text
    assert "claims_attribute_invalid" in result.get_element_by_id("claims-v2").text
    refused = admin.post(f"/admin/idps/{SLUG}/go-live")
    assert refused.status_code == 422 and b"no test login has passed" in refused.data


def test_a_draft_cannot_go_live(admin: Admin) -> None:
    admin.draft("okta")
    for form in ({}, {"without_test": "yes"}):
        refused = admin.post(f"/admin/idps/{SLUG}/go-live", **form)
        assert refused.status_code == 422 and b"is a draft" in refused.data


def test_deleting_asks_for_the_slug_and_a_deleted_idp_can_be_restored(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    admin.post(f"/admin/idps/{SLUG}/go-live", without_test="yes")

    for typed in ("", "othe", "Other", "dev"):
        kept = admin.post(f"/admin/idps/{SLUG}/delete", confirm_slug=typed)
        assert kept.status_code == 422 and b"type the slug other to confirm" in kept.data
    assert admin.client.get(f"/admin/idps/{SLUG}").status_code == 200

    assert admin.post(f"/admin/idps/{SLUG}/delete", confirm_slug=SLUG).status_code == 303
    assert admin.client.get(f"/admin/idps/{SLUG}").status_code == 404
    index = admin.page("/admin/")
    assert index.xpath("//table[@id='deleted']//tr[@data-slug='other']")

    assert admin.post(f"/admin/deleted/{SLUG}/restore").status_code == 303
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.get_element_by_id("stage").get("data-state") == "testing"
    assert page.get_element_by_id("idp-entity-id").text == session_other_idp.entity_id
    assert not admin.page("/admin/").xpath("//table[@id='deleted']//tr[@data-slug='other']")
    assert _events(bridge, "idp_restored")[0]["actor"] == "user:a-1 (Alice)"
    # Restored into testing: not offered until it goes live again.
    _refused_as_unknown(_user_login(browser, session_other_idp))


def test_a_refused_test_login_keeps_a_bounded_detail(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, bridge: Services) -> None:
    """What a refused test login stores names what the IdP's response carried: a 20 kB
    Destination is kept as much as a refusal's audit row keeps of it."""
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    started = admin.client.get(f"/admin/idps/{SLUG}/test-login")
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    signed = session_other_idp.response_for(session_other_idp.parse_request(saml_request, None),
                                            USERS["bob"], sign_response=False)
    root = etree.fromstring(base64.b64decode(signed))
    root.set("Destination", "https://bridge.example.com/" + "d" * 20_000)
    answered = browser.post_acs(base64.b64encode(etree.tostring(root)).decode(), SLUG,
                                json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    with bridge.db.transaction() as session:
        result = json.loads(session.scalars(select(TestLogin.result_json)).one())
    assert (result["outcome"], result["code"]) == ("refused", "saml_destination_mismatch")
    assert result["detail"]["detail_cut"] is True
    assert len(json.dumps(result)) < 9000


def test_a_duplicate_answer_refused_after_the_test_passed_leaves_it_passed(
        app: Flask, admin: Admin, browser: Browser, session_other_idp: DevIdp,
        bridge: Services) -> None:
    """The IdP's form posted twice: both answers pass the first checks, one uses the request
    and the other is refused as a replay after the first stored its result. What the loser
    does then (``failed``) must not turn the passed test into a refused one."""
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    result = _test_login(admin, browser, session_other_idp)
    assert "Accepted" in result.get_element_by_id("test-outcome").text
    with bridge.db.transaction() as session:
        request_id = session.scalars(select(TestLogin.request_id)).one()
    test_logins = app.extensions["admin"].test_logins
    test_logins.failed(request_id, SamlRejected("saml_replay",
                                                "This login response has already been used."))
    with bridge.db.transaction() as session:
        stored = json.loads(session.scalars(select(TestLogin.result_json)).one())
    assert stored["outcome"] == "accepted"
    assert test_logins.last_accepted(SLUG) is not None  # the preview still has it
