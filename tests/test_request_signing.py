"""Our signed SAML requests, checked by an IdP that is not ours: pysaml2, configured to require
signed AuthnRequests and logout messages, learning our signing key from our SP metadata."""

from __future__ import annotations

import base64
import gc
import hashlib
import re
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.response import IncorrectlySigned
from werkzeug.test import TestResponse

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp, PendingRequest
from bridge.logout.single_logout import SingleLogout
from bridge.saml.sp import authn_request, logout_request
from bridge.service_provider import service_provider
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.models import AuditEvent, RefreshFamily, SamlKey
from tests.conftest import BRIDGE_URL, TEST_KEK, make_settings
from tests.helpers import Browser, Login

REDIRECT, POST = BINDING_HTTP_REDIRECT, BINDING_HTTP_POST
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
DS = "http://www.w3.org/2000/09/xmldsig#"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
SP_ENTITY_ID = f"{BRIDGE_URL}/saml/metadata"
OUR_SLO = f"{BRIDGE_URL}/saml/dev/slo"
IDP = "https://signing-idp.example.org"


class ShiftedClock:
    """The system clock, moved by ``offset`` seconds: the bridge's clock, so that a test can let
    minutes pass for the bridge (pysaml2 keeps the real time, as a real IdP would)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="session")
def signing_idp_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signing-idp-keys")


def make_idp(keys: Path, app_holder: dict[str, Flask], *, want_signed: bool = True,
             sso: tuple[str, ...] = (REDIRECT,), slo: tuple[str, ...] = (REDIRECT,)) -> DevIdp:
    """A pysaml2 IdP that reads our SP metadata from the running bridge, as an IdP admin would
    load it (keys included)."""
    def our_metadata() -> bytes:
        return app_holder["app"].test_client().get("/saml/metadata").data

    return DevIdp(base_url="https://signing-idp.example.org", state_dir=keys,
                  sp_metadata=our_metadata, want_authn_requests_signed=want_signed,
                  sso_bindings=sso, slo_bindings=slo)


def form_fields(response: TestResponse) -> tuple[str, dict[str, str]]:
    page = response.get_data(as_text=True)
    action = unescape(re.search(r'<form method="post" action="([^"]*)"', page).group(1))
    fields = {unescape(n): unescape(v) for n, v in
              re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)}
    return action, fields


def received_request(idp: DevIdp, response: TestResponse) -> PendingRequest:
    """What the IdP makes of the AuthnRequest the browser brings it (either binding)."""
    if response.status_code == 302:
        query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
        return idp.parse_request(query["SAMLRequest"], query.get("RelayState"), binding=REDIRECT,
                                 sigalg=query.get("SigAlg"), signature=query.get("Signature"))
    assert response.status_code == 200, response.get_data(as_text=True)
    _, fields = form_fields(response)
    return idp.parse_request(fields["SAMLRequest"], fields.get("RelayState"), binding=POST)


@pytest.fixture
def signing_idp(request: pytest.FixtureRequest, signing_idp_keys: Path,
                app_holder: dict[str, Flask], idp_dir: Path) -> DevIdp:
    """The IdP registered as ``dev``; indirect parameters: DevIdp options plus ``toml``, lines
    added to its settings file."""
    options = dict(getattr(request, "param", {}))
    toml = options.pop("toml", "")
    idp = make_idp(signing_idp_keys, app_holder, **options)
    idp.write_metadata(idp_dir)
    settings_file = idp_dir / "dev.toml"
    settings_file.write_text(toml + settings_file.read_text())  # top-level keys before tables
    return idp


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, signing_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path)


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def bridge(settings: Settings, clock: ShiftedClock) -> Iterator[Services]:
    the_bridge = build_services(settings, clock)
    yield the_bridge
    the_bridge.db.dispose()


@pytest.fixture
def signed_browser(client, signing_idp: DevIdp, bridge: Services, app) -> Browser:  # type: ignore[no-untyped-def]
    return Browser(client, signing_idp, bridge)


def login(browser: Browser, response: TestResponse | None = None) -> TestResponse:
    """Through the IdP with ``response`` (a fresh /authorize if None); the ACS's answer."""
    response = response or browser.authorize()
    pending = received_request(browser.idp, response)
    return browser.post_acs(browser.idp.response_for(pending, USERS["alice"]))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def posted_xml(response: TestResponse, field: str = "SAMLRequest") -> etree._Element:
    _, fields = form_fields(response)
    return etree.fromstring(base64.b64decode(fields[field]))


def get(browser: Browser, url: str) -> TestResponse:
    parts = urlsplit(url)
    return browser.client.get(f"{parts.path}?{parts.query}",
                              headers={"Accept": "application/json"})


def refused_by_pysaml2(action: Callable[[], object], error: type[Exception] = IncorrectlySigned
                       ) -> None:
    """pysaml2 refuses what ``action`` hands it. On that path pysaml2 leaves temporary files
    open in a reference cycle (saml2.sigver): they are collected here, where their
    ResourceWarning is expected, and not in some later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(error):
            action()
        gc.collect()


def tokens(browser: Browser) -> dict[str, str]:
    response = browser.authorize()
    code = browser.code_from(login(browser, response), _login_of(response))
    answer = browser.exchange(code, response.verifier)  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()  # type: ignore[no-any-return]


def _login_of(response: TestResponse) -> Login:
    return Login(response.verifier, response.state, None,  # type: ignore[attr-defined,arg-type]
                 response.redirect_uri)  # type: ignore[attr-defined]


def _our_metadata(browser: Browser) -> etree._Element:
    return etree.fromstring(browser.client.get("/saml/metadata").data)


def _pem_body(text: str | None) -> str:
    return "".join(line for line in (text or "").split() if "-----" not in line
                   and "CERTIFICATE" not in line)


NEVER = 'sign_requests = "never"\n'
BOTH = (REDIRECT, POST)


# --- AuthnRequests ------------------------------------------------------------------------------

def test_signed_authn_request_over_redirect_is_accepted_by_pysaml2(signed_browser: Browser) -> None:
    response = signed_browser.authorize()
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert query["SigAlg"] == RSA_SHA256
    # SAML Bindings §3.4.4.1: the signature covers the query, never the (deflated) XML.
    assert b"Signature" not in zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15)
    code = signed_browser.code_from(login(signed_browser, response), _login_of(response))
    assert signed_browser.exchange(code, response.verifier).status_code == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize("signing_idp", [{"sso": BOTH, "toml": 'authn_request_binding = "post"\n'},
                                         {"sso": (POST,)}], indirect=True, ids=["chosen", "only"])
def test_authn_request_over_post_is_a_signed_auto_submitting_form(signed_browser: Browser) -> None:
    """Chosen in the IdP's settings, or the only binding its metadata offers (before, a POST-only
    IdP was sent a redirect to a URL that does not take one)."""
    response = signed_browser.authorize()
    assert response.status_code == 200
    action, fields = form_fields(response)
    assert action == f"{IDP}/sso/post"
    assert set(fields) == {"SAMLRequest"}
    signature = posted_xml(response).find(f"{{{DS}}}Signature")
    assert signature is not None
    assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm") == RSA_SHA256
    assert signature.find(f".//{{{DS}}}DigestMethod").get("Algorithm") == SHA256
    assert response.headers["Cache-Control"] == "no-store"
    assert signed_browser.client.get_cookie("__Host-bridge-login") is not None
    code = signed_browser.code_from(login(signed_browser, response), _login_of(response))
    assert signed_browser.exchange(code, response.verifier).status_code == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize("signing_idp", [{"sso": (POST,)}], indirect=True)
def test_post_form_page_runs_only_its_own_script_and_posts_only_to_the_idp(
        signed_browser: Browser) -> None:
    response = signed_browser.authorize()
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"]
                  .split(";"))
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert policy["form-action"] == IDP
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "<noscript>" in page  # a button for browsers that run no script


@pytest.mark.parametrize("signing_idp", [{"toml": NEVER}, {"sso": (POST,), "toml": NEVER}],
                         indirect=True, ids=["redirect", "post"])
def test_an_idp_that_requires_signatures_refuses_our_requests_when_signing_is_off(
        signed_browser: Browser) -> None:
    response = signed_browser.authorize()
    refused_by_pysaml2(lambda: received_request(signed_browser.idp, response))


@pytest.mark.parametrize("signing_idp", [{"want_signed": False, "sso": BOTH},
                                         {"want_signed": False, "sso": (POST,)}],
                         indirect=True, ids=["redirect", "post"])
def test_auto_does_not_sign_for_an_idp_that_does_not_ask(signed_browser: Browser) -> None:
    """Nothing changes for IdPs that never asked for signatures (some refuse a signature they
    have no key for), except that a POST-only one now gets a form."""
    response = signed_browser.authorize()
    if signed_browser.idp.sso_bindings == BOTH:
        assert response.status_code == 302
        assert "SigAlg" not in query_of(response.headers["Location"])
    else:
        assert response.status_code == 200
        assert posted_xml(response).find(f"{{{DS}}}Signature") is None
    descriptor = _our_metadata(signed_browser).find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor.get("AuthnRequestsSigned") == "false"
    assert login(signed_browser, response).status_code == 302


@pytest.mark.parametrize("signing_idp", [{"want_signed": False,
                                          "toml": 'sign_requests = "always"\n'}], indirect=True)
def test_always_signs_for_an_idp_that_does_not_ask(signed_browser: Browser) -> None:
    response = signed_browser.authorize()
    assert query_of(response.headers["Location"])["SigAlg"] == RSA_SHA256
    descriptor = _our_metadata(signed_browser).find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor.get("AuthnRequestsSigned") == "true"


def test_a_signed_redirect_request_does_not_verify_with_another_request_in_it(
        signed_browser: Browser) -> None:
    first = query_of(signed_browser.authorize().headers["Location"])
    second = query_of(signed_browser.authorize().headers["Location"])
    refused_by_pysaml2(lambda: signed_browser.idp.parse_request(
        second["SAMLRequest"], None, binding=REDIRECT, sigalg=first["SigAlg"],
        signature=first["Signature"]))


@pytest.mark.parametrize("signing_idp", [{"sso": (POST,)}], indirect=True)
def test_a_signed_posted_request_does_not_verify_once_changed(signed_browser: Browser) -> None:
    xml = posted_xml(signed_browser.authorize())
    xml.set("AssertionConsumerServiceURL", "https://evil.example.net/acs")
    refused_by_pysaml2(lambda: signed_browser.idp.parse_request(
        base64.b64encode(etree.tostring(xml)).decode(), None, binding=POST))


def test_sp_metadata_publishes_the_signing_certificate(signed_browser: Browser) -> None:
    descriptor = _our_metadata(signed_browser).find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor.get("AuthnRequestsSigned") == "true"  # the one IdP wants them signed
    signing = descriptor.findall(f"{{{MD}}}KeyDescriptor[@use='signing']")
    active = signed_browser.bridge.sp_keys.signing_key().certificate_pem
    assert [_pem_body(k.findtext(f".//{{{DS}}}X509Certificate")) for k in signing] == [
        _pem_body(active)]
    assert len(descriptor.findall(f"{{{MD}}}KeyDescriptor[@use='encryption']")) == 1


# --- Single Logout, both ways -------------------------------------------------------------------

def _session_index(browser: Browser) -> str:
    with browser.bridge.db.transaction() as session:
        family = session.query(RefreshFamily).order_by(RefreshFamily.created_at.desc()).first()
        return str(family.session_index)


@pytest.mark.parametrize("signing_idp", [{"slo": (REDIRECT,)}, {"slo": (POST,)}], indirect=True,
                         ids=["redirect", "post"])
def test_our_logout_request_is_signed_and_the_idp_answer_ends_it(signed_browser: Browser) -> None:
    """SP-initiated Single Logout with an IdP that verifies signatures: pysaml2 accepts our
    LogoutRequest on the binding its metadata offers, and its signed LogoutResponse is accepted
    at our Single Logout URL."""
    idp = signed_browser.idp
    issued = tokens(signed_browser)
    index = _session_index(signed_browser)
    answer = signed_browser.client.post("/logout", data={
        "client_id": "demo", "refresh_token": issued["refresh_token"], "idp_logout": "true"})
    url = answer.get_json()["idp_logout_url"]
    if idp.slo_bindings == (REDIRECT,):
        assert url.startswith(f"{IDP}/slo/redirect?SAMLRequest=")
        query = query_of(url)
        assert query["SigAlg"] == RSA_SHA256
        received = idp.receive_logout_request(query["SAMLRequest"], binding=REDIRECT,
                                              sigalg=query["SigAlg"], signature=query["Signature"])
    else:
        # The client can only send the browser to a URL: ours, which posts the signed request.
        assert url.startswith(f"{BRIDGE_URL}/saml/dev/logout?ticket=")
        page = get(signed_browser, url)
        assert page.status_code == 200
        action, fields = form_fields(page)
        assert action == f"{IDP}/slo/post"
        assert posted_xml(page).find(f"{{{DS}}}Signature") is not None
        received = idp.receive_logout_request(fields["SAMLRequest"], binding=POST)
    assert (received.name_id, received.session_indexes) == (USERS["alice"].persistent_id, [index])
    # The IdP's answer, back at our Single Logout URL (HTTP-Redirect, as our metadata offers).
    back = get(signed_browser, idp.logout_response_url(received.message))
    assert back.status_code == 200, back.get_data(as_text=True)
    assert "You are signed out." in back.get_data(as_text=True)
    event = signed_browser.last_audit()
    assert (event.event, event.outcome) == ("logout_response", "success")
    assert signed_browser.refresh(issued["refresh_token"]).status_code == 400


@pytest.mark.parametrize("signing_idp", [{"slo": (REDIRECT,)}, {"slo": (POST,)}], indirect=True,
                         ids=["redirect", "post"])
def test_our_logout_response_is_signed_and_accepted_by_the_idp(signed_browser: Browser) -> None:
    """IdP-initiated Single Logout: our LogoutResponse goes back to the IdP's Single Logout
    service on its binding, signed, and pysaml2 accepts it."""
    idp = signed_browser.idp
    issued = tokens(signed_browser)
    url = idp.logout_request_url(OUR_SLO, SP_ENTITY_ID, USERS["alice"].persistent_id,
                                 [_session_index(signed_browser)])
    response = get(signed_browser, url)
    if idp.slo_bindings == (REDIRECT,):
        assert response.status_code == 302
        query = query_of(response.headers["Location"])
        status = idp.receive_logout_response(query["SAMLResponse"], binding=REDIRECT,
                                             sigalg=query["SigAlg"], signature=query["Signature"])
    else:
        # Before, an IdP without an HTTP-Redirect Single Logout service got no answer at all.
        assert response.status_code == 200
        action, fields = form_fields(response)
        assert action == f"{IDP}/slo/post"
        status = idp.receive_logout_response(fields["SAMLResponse"], binding=POST)
    assert status == SUCCESS
    assert signed_browser.refresh(issued["refresh_token"]).status_code == 400


@pytest.mark.parametrize("signing_idp", [{"slo": (REDIRECT,), "toml": NEVER},
                                         {"slo": (POST,), "toml": NEVER}], indirect=True,
                         ids=["redirect", "post"])
def test_an_idp_that_requires_signatures_refuses_our_logout_messages_when_signing_is_off(
        signed_browser: Browser, signing_idp_keys: Path, app_holder: dict[str, Flask]) -> None:
    idp = signed_browser.idp
    # The IdP's answer to our LogoutRequest needs no login here.
    response = get(signed_browser, idp.logout_request_url(
        OUR_SLO, SP_ENTITY_ID, USERS["alice"].persistent_id, []))
    if idp.slo_bindings == (REDIRECT,):
        query = query_of(response.headers["Location"])
        assert "SigAlg" not in query
        refused_by_pysaml2(lambda: idp.receive_logout_response(query["SAMLResponse"],
                                                               binding=REDIRECT), ValueError)
    else:
        _, fields = form_fields(response)
        refused_by_pysaml2(lambda: idp.receive_logout_response(fields["SAMLResponse"],
                                                               binding=POST), ValueError)
    # A login, through the same IdP with its check of AuthnRequests off, to log out of.
    lenient = make_idp(signing_idp_keys, app_holder, want_signed=False, slo=idp.slo_bindings)
    start = signed_browser.authorize()
    code = signed_browser.code_from(signed_browser.post_acs(idp.response_for(
        received_request(lenient, start), USERS["alice"])), _login_of(start))
    issued = signed_browser.exchange(code, start.verifier).get_json()  # type: ignore[attr-defined]
    url = signed_browser.client.post("/logout", data={
        "client_id": "demo", "refresh_token": issued["refresh_token"],
        "idp_logout": "true"}).get_json()["idp_logout_url"]
    if idp.slo_bindings == (REDIRECT,):
        query = query_of(url)
        refused_by_pysaml2(lambda: idp.receive_logout_request(query["SAMLRequest"],
                                                              binding=REDIRECT))
    else:
        _, fields = form_fields(get(signed_browser, url))
        refused_by_pysaml2(lambda: idp.receive_logout_request(fields["SAMLRequest"],
                                                              binding=POST))


@pytest.mark.parametrize("signing_idp", [{"slo": BOTH}], indirect=True)
def test_logout_response_goes_to_the_idps_response_location(signed_browser: Browser,
                                                            idp_dir: Path) -> None:
    """SAML Metadata §2.2.2: a SingleLogoutService's ResponseLocation receives the responses."""
    # The IdP publishes where responses go, and the bridge restarts with that metadata.
    document = (idp_dir / "dev.xml").read_text().replace(
        f'Location="{IDP}/slo/redirect"',
        f'Location="{IDP}/slo/redirect" ResponseLocation="{IDP}/slo/responses"')
    assert "ResponseLocation" in document
    (idp_dir / "dev.xml").write_text(document)
    bridge = build_services(signed_browser.bridge.settings, signed_browser.bridge.clock)
    try:
        url = signed_browser.idp.logout_request_url(OUR_SLO, SP_ENTITY_ID, "someone", [])
        message = SingleLogout(bridge).idp_logout("dev", urlsplit(url).query, error_id="t")
        assert message is not None and message.url.startswith(f"{IDP}/slo/responses?")
        xml = zlib.decompress(base64.b64decode(query_of(message.url)["SAMLResponse"]), -15)
        assert etree.fromstring(xml).get("Destination") == f"{IDP}/slo/responses"
        assert "Signature" in query_of(message.url)
    finally:
        bridge.db.dispose()


# --- what an attacker can send to the new endpoints ---------------------------------------------

def _idp_logout_response(browser: Browser) -> str:
    """A genuine, signed LogoutResponse URL from the IdP (to a LogoutRequest of ours)."""
    issued = tokens(browser)
    url = browser.client.post("/logout", data={
        "client_id": "demo", "refresh_token": issued["refresh_token"],
        "idp_logout": "true"}).get_json()["idp_logout_url"]
    query = query_of(url)
    received = browser.idp.receive_logout_request(query["SAMLRequest"], binding=REDIRECT,
                                                  sigalg=query["SigAlg"],
                                                  signature=query["Signature"])
    return browser.idp.logout_response_url(received.message)


def _refused(browser: Browser, url: str, code: str, event: str) -> None:
    response = get(browser, url)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == code
    last = browser.last_audit()
    assert (last.event, last.outcome, last.code) == (event, "refused", code)


def test_an_unsigned_logout_response_is_refused(signed_browser: Browser) -> None:
    url = _idp_logout_response(signed_browser)
    parts = urlsplit(url)
    unsigned = "&".join(p for p in parts.query.split("&")
                        if not p.startswith(("Signature=", "SigAlg=")))
    _refused(signed_browser, f"{parts.path}?{unsigned}", "saml_signature_missing",
             "logout_response")


def test_a_logout_response_under_another_messages_signature_is_refused(
        signed_browser: Browser) -> None:
    first, second = _idp_logout_response(signed_browser), _idp_logout_response(signed_browser)
    raw = dict(p.split("=", 1) for p in urlsplit(first).query.split("&"))
    raw["SAMLResponse"] = dict(p.split("=", 1) for p in urlsplit(second).query.split("&"))[
        "SAMLResponse"]
    forged = "&".join(f"{k}={v}" for k, v in raw.items())
    _refused(signed_browser, f"/saml/dev/slo?{forged}", "saml_signature_invalid",
             "logout_response")


def test_a_logout_response_is_accepted_once(signed_browser: Browser) -> None:
    """A signed LogoutResponse URL from a browser history or a log, sent again within its
    minute: before, every copy was accepted and audited as the IdP's answer."""
    url = _idp_logout_response(signed_browser)
    assert get(signed_browser, url).status_code == 200
    _refused(signed_browser, url, "saml_replay", "logout_response")
    with signed_browser.bridge.db.transaction() as session:
        assert session.query(AuditEvent).filter(AuditEvent.event == "logout_response",
                                                AuditEvent.outcome == "success").count() == 1


def test_a_logout_response_to_no_request_of_ours_is_refused(signed_browser: Browser) -> None:
    """The IdP's signed LogoutResponse must answer a LogoutRequest we sent it (InResponseTo);
    before, any InResponseTo, or none, was taken as the answer to our logout."""
    issued = tokens(signed_browser)
    url = signed_browser.client.post("/logout", data={
        "client_id": "demo", "refresh_token": issued["refresh_token"],
        "idp_logout": "true"}).get_json()["idp_logout_url"]
    query = query_of(url)
    received = signed_browser.idp.receive_logout_request(
        query["SAMLRequest"], binding=REDIRECT, sigalg=query["SigAlg"], signature=query["Signature"])
    genuine = received.message.id
    for answered in ("_" + "0" * 56, genuine[:-1] + ("0" if genuine[-1] != "0" else "1"),
                     "_someone-elses-request"):
        received.message.id = answered
        _refused(signed_browser, signed_browser.idp.logout_response_url(received.message),
                 "saml_request_unknown", "logout_response")
    received.message.id = genuine
    assert get(signed_browser, signed_browser.idp.logout_response_url(
        received.message)).status_code == 200


@pytest.mark.parametrize("signing_idp", [{"slo": (POST,)}], indirect=True)
def test_a_logout_link_that_was_altered_expired_or_moved_posts_nothing(
        signed_browser: Browser, clock: ShiftedClock) -> None:
    issued = tokens(signed_browser)
    url = signed_browser.client.post("/logout", data={
        "client_id": "demo", "refresh_token": issued["refresh_token"],
        "idp_logout": "true"}).get_json()["idp_logout_url"]
    ticket = query_of(url)["ticket"]
    body, _, mac = ticket.partition(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    someone_else = payload.replace(USERS["alice"].persistent_id.encode(), b"a1b2c3d4-0002")
    forged = base64.urlsafe_b64encode(someone_else).rstrip(b"=").decode() + "." + mac
    for path in (f"/saml/dev/logout?ticket={forged}", f"/saml/other/logout?ticket={ticket}",
                 "/saml/dev/logout?ticket=", "/saml/dev/logout"):
        response = signed_browser.client.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 400, path
        assert response.get_json()["code"] == "logout_ticket_invalid"
    assert get(signed_browser, url).status_code == 200  # the genuine link works ...
    clock.offset += 301
    expired = get(signed_browser, url)  # ... for five minutes
    assert (expired.status_code, expired.get_json()["code"]) == (400, "logout_ticket_invalid")


# --- key rollover -------------------------------------------------------------------------------

@pytest.fixture
def fresh_signing_keys(database: Database) -> Iterator[None]:
    """This test rotates the SP signing key: later tests start from a new one."""
    yield
    with database.transaction() as session:
        session.query(SamlKey).filter(SamlKey.use == "signing").delete()


@pytest.mark.parametrize("signing_idp", [{"sso": BOTH}], indirect=True)
def test_key_rollover_with_no_failed_login(signed_browser: Browser, signing_idp_keys: Path,
                                           fresh_signing_keys: None) -> None:
    """The new key is in our metadata before it signs; an IdP that reads our metadata in that
    time (pysaml2 here, requiring signed requests) never refuses a login."""
    browser, keys = signed_browser, signed_browser.bridge.sp_keys
    idp = browser.idp

    def logs_in() -> None:
        response = browser.authorize()
        code = browser.code_from(login(browser, response), _login_of(response))
        assert browser.exchange(code, response.verifier).status_code == 200  # type: ignore[attr-defined]

    logs_in()
    old = keys.signing_key()
    before_rotation = browser.client.get("/saml/metadata").data
    lead = 3.0
    new = keys.rotate(lead_seconds=lead)
    # Published at once, next to the key that still signs.
    published = [_pem_body(c) for c in keys.signing_certificates()]
    assert published == [_pem_body(old.certificate_pem), _pem_body(new.certificate_pem)]
    assert keys.signing_key().id == old.id
    logs_in()  # the IdP has not read our metadata again yet: the old key still signs
    idp.reload_sp_metadata()  # ... now it has, within the lead time
    logs_in()
    time.sleep(max(0.0, (new.active_at or 0) - time.time()) + 0.1)
    assert keys.signing_key().id == new.id
    logs_in()  # signed with the new key, which the IdP learnt in time
    # Without the lead time, an IdP that read our metadata before the rotation would refuse now.
    stale = DevIdp(base_url=IDP, state_dir=signing_idp_keys, sp_metadata=lambda: before_rotation,
                   want_authn_requests_signed=True, sso_bindings=BOTH)
    response = browser.authorize()
    refused_by_pysaml2(lambda: received_request(stale, response))
    # The retired key stays published for the retention time (days; see test_saml_keys.py).
    assert len(keys.signing_certificates()) == 2


@pytest.mark.parametrize("signing_idp", [{"sso": BOTH}], indirect=True)
@pytest.mark.slow  # starts a process
def test_a_compromised_key_withdrawn_at_once_is_no_longer_trusted(
        signed_browser: Browser, clock: ShiftedClock, tmp_path: Path, idp_dir: Path,
        fresh_signing_keys: None) -> None:
    """The compromised-key procedure: `bridge saml-keys rotate --now --withdraw-old`. Before,
    `--lead 0` kept the old key in our metadata for the retention time (7 days), so an IdP that
    read our metadata after the rotation still accepted requests signed with the stolen key."""
    browser = signed_browser
    compromised = browser.bridge.sp_keys.signing_key()
    assert _pem_body(compromised.certificate_pem) in _pem_body(
        browser.client.get("/saml/metadata").get_data(as_text=True))

    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "saml-keys", "rotate", "--now",
         "--withdraw-old"], capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "BRIDGE_DATABASE_URL": browser.bridge.settings.database_url,
             "BRIDGE_BASE_URL": BRIDGE_URL, "BRIDGE_IDP_METADATA_DIR": str(idp_dir),
             "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance"),
             "BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK, "BRIDGE_LOG_LEVEL": "ERROR"})
    assert done.returncode == 0, done.stderr
    assert "withdrawn" in done.stdout
    states = {line.split()[0]: line.split()[2] for line in done.stdout.splitlines()
              if " signing " in line}
    assert states[compromised.id] == "unpublished"

    clock.offset = 16  # every node re-reads the key table within 15 seconds
    metadata = browser.client.get("/saml/metadata").get_data(as_text=True)
    clock.offset = 0
    assert _pem_body(compromised.certificate_pem) not in _pem_body(metadata)
    assert len(etree.fromstring(metadata.encode()).findall(
        f".//{{{MD}}}KeyDescriptor[@use='signing']")) == 1
    browser.idp.reload_sp_metadata()  # the IdP reads our metadata again

    # Whoever holds the stolen key signs an AuthnRequest and a LogoutRequest for alice: refused.
    idp, sp = browser.bridge.idps["dev"], service_provider(browser.bridge.settings, "dev")
    _, forged = authn_request(idp, sp, now=time.time(), signing_key=lambda: compromised)
    query = query_of(forged.url)
    refused_by_pysaml2(lambda: browser.idp.parse_request(
        query["SAMLRequest"], None, binding=REDIRECT, sigalg=query["SigAlg"],
        signature=query["Signature"]))
    logout = logout_request(idp, sp, name_id=USERS["alice"].persistent_id, session_index=None,
                            now=time.time(), signing_key=lambda: compromised)
    assert logout is not None
    query = query_of(logout.url)
    refused_by_pysaml2(lambda: browser.idp.receive_logout_request(
        query["SAMLRequest"], binding=REDIRECT, sigalg=query["SigAlg"],
        signature=query["Signature"]))
    # Our own requests, signed with the new key, go on being accepted.
    response = browser.authorize()
    code = browser.code_from(login(browser, response), _login_of(response))
    assert browser.exchange(code, response.verifier).status_code == 200  # type: ignore[attr-defined]
