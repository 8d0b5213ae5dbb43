"""Step-up from the attacker's side: an IdP (or whoever sits between it and the bridge) answers
less than the client asked for. Each answer is refused with its stable code, the client hears
why on its redirect URI, an audit event is written, and nothing is issued."""

from __future__ import annotations

import base64
import json
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from lxml import etree

from bridge.config import Settings
from bridge.dev.saml_idp import MFA_CONTEXT, PASSWORD_CONTEXT, DevIdp
from bridge.saml import ns
from bridge.store.db import Database
from tests.attacks import xml_tools as x
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser, Login

_AC = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
WEB2 = {"client_id": "web2", "redirect_uris": ["https://web2.example.com/cb"],
        "audience": "https://api.example.com", "claims_version": 2, "public": True}


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, WEB2])


def start(browser: Browser, **params: str) -> Login:
    return browser.start(client_id="web2", redirect_uri=WEB2["redirect_uris"][0],
                         scope="openid", **params)


def refused(browser: Browser, login: Login, saml_response: str, *, code: str,
            error: str = "unmet_authentication_requirements") -> None:
    response = browser.post_acs(saml_response)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == login.redirect_uri
    query = parse_qs(location.query)
    assert query["error"] == [error] and query["state"] == [login.state]
    assert "code" not in query
    assert browser.issued_nothing()
    event = browser.last_audit()
    assert (event.event, event.outcome, event.code, event.client_id) == (
        "login", "refused", code, "web2")


def test_a_weaker_context_than_asked_is_refused(browser: Browser) -> None:
    login = start(browser, acr_values="mfa")
    refused(browser, login, browser.signed_response(login, class_ref=PASSWORD_CONTEXT),
            code="authn_context_unmet")


def test_a_context_the_table_does_not_know_is_refused(browser: Browser) -> None:
    """An IdP that invents a stronger-sounding class reference gets no level for it."""
    login = start(browser, acr_values="mfa")
    refused(browser, login, browser.signed_response(login, class_ref="urn:example:totally-mfa"),
            code="authn_context_unmet")


def test_an_authn_context_without_class_is_refused(browser: Browser, idp_key_dir: Path) -> None:
    """An AuthnContext that names a declaration instead of a class (schema-valid, re-signed by
    the IdP's own key): nothing says how strong the login was."""
    login = start(browser, acr_values="mfa")
    root = x.decode(browser.signed_response(login, class_ref=MFA_CONTEXT))
    class_ref = x.one(root, ".//saml:AuthnContextClassRef")
    declaration = etree.Element(f"{{{ns.SAML}}}AuthnContextDeclRef")
    declaration.text = "urn:example:declaration"
    class_ref.getparent().replace(class_ref, declaration)
    x.resign(root, x.load_keypair(idp_key_dir))
    refused(browser, login, x.encode(root), code="authn_context_missing")


def test_an_answer_without_authn_context_is_refused(browser: Browser) -> None:
    """No AuthnContext at all breaks the SAML schema: refused before any requirement."""
    login = start(browser, acr_values="mfa")
    response = browser.post_acs(browser.signed_response(login, class_ref=None))
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_malformed"
    assert browser.issued_nothing()


def test_an_old_authn_instant_does_not_meet_max_age(browser: Browser) -> None:
    login = start(browser, max_age="60", acr_values="mfa")
    old = int(time.time()) - 3600
    refused(browser, login, browser.signed_response(login, class_ref=MFA_CONTEXT,
                                                    authn_instant=old),
            code="authn_instant_too_old")


def test_a_reused_session_does_not_meet_prompt_login(browser: Browser) -> None:
    """ForceAuthn ignored: the IdP answers from a session older than the request."""
    login = start(browser, prompt="login")
    assert login.pending.force_authn
    old = int(time.time()) - 600
    refused(browser, login, browser.signed_response(login, authn_instant=old),
            code="authn_instant_too_old")


def test_an_idp_that_ignores_is_passive_gets_login_required(browser: Browser) -> None:
    """prompt=none, yet the IdP authenticated the person after the request, 90 seconds into
    a login page it was asked not to show."""
    login = start(browser, prompt="none")
    browser.bridge.clock.advance(90)  # type: ignore[attr-defined]
    fresh = int(time.time()) + 90
    refused(browser, login, browser.signed_response(login, authn_instant=fresh),
            code="authn_passive_ignored", error="login_required")


def test_a_request_stripped_of_its_context_still_answers_to_what_the_client_asked(
        browser: Browser) -> None:
    """The AuthnRequest altered on its way (RequestedAuthnContext removed, so the IdP does a
    password login): what counts is the requirement stored with the request, not what the IdP
    saw."""
    response = browser.authorize(client_id="web2", redirect_uri=WEB2["redirect_uris"][0],
                                 scope="openid", acr_values="mfa")
    saml_request = parse_qs(urlsplit(response.headers["Location"]).query)["SAMLRequest"][0]
    request = etree.fromstring(zlib.decompress(base64.b64decode(saml_request), -15))
    request.remove(request.find(f"{{{ns.SAMLP}}}RequestedAuthnContext"))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stripped = compressor.compress(etree.tostring(request)) + compressor.flush()
    pending = browser.idp.parse_request(base64.b64encode(stripped).decode(), None)
    assert pending.requested_contexts == ()
    login = Login(response.verifier, response.state, pending,  # type: ignore[attr-defined]
                  WEB2["redirect_uris"][0])
    refused(browser, login, browser.idp.response_for(pending, browser.idp.users["alice"]),
            code="authn_context_unmet")


def test_acr_values_added_to_the_url_after_the_fact_change_nothing(browser: Browser) -> None:
    """A password login started without acr_values cannot be passed off as mfa: the token says
    what the IdP asserted."""
    login = start(browser)
    code = browser.code_from(browser.post_acs(browser.signed_response(login)), login)
    body = browser.exchange(code, login.verifier, client_id="web2",
                            redirect_uri=WEB2["redirect_uris"][0], acr_values="mfa").get_json()
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["acr"] == "pwd"


def test_no_passive_for_a_request_that_was_not_passive_is_a_plain_failure(
        browser: Browser) -> None:
    login = start(browser)
    response = browser.post_acs(browser.idp.failure_for(login.pending))
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_status_not_success"
    assert browser.issued_nothing()


def test_a_forged_no_passive_is_refused(browser: Browser) -> None:
    """Signed by a key that is not the IdP's: no login_required reaches the client."""
    login = start(browser, prompt="none")
    root = x.decode(browser.idp.failure_for(login.pending))
    x.strip_signature(root)
    x.sign(root, x.attacker_keypair())
    response = browser.post_acs(x.encode(root))
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_signature_invalid"
    assert browser.issued_nothing()
    assert browser.last_audit().code == "saml_signature_invalid"


def test_no_passive_from_another_browser_is_refused(browser: Browser) -> None:
    login = start(browser, prompt="none")
    browser.client.delete_cookie("__Host-bridge-login")
    response = browser.post_acs(browser.idp.failure_for(login.pending))
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_browser_mismatch"


def test_no_passive_addressed_elsewhere_is_refused(browser: Browser) -> None:
    login = start(browser, prompt="none")
    login.pending.acs_url = "https://bridge.example.com/saml/other/acs"
    response = browser.post_acs(browser.idp.failure_for(login.pending))
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_destination_mismatch"


@pytest.mark.parametrize(("class_ref", "acr"), [
    # A well-known MFA class the table does not list: its short name would be the level's.
    (_AC + "MobileTwoFactorContract", _AC + "MobileTwoFactorContract"),
    # A well-known password class the table does not list (it lists PasswordProtectedTransport).
    (_AC + "Password", _AC + "Password"),
    # An IdP that names its class after our levels: passed through, it would be one.
    ("mfa", None),
    ("pwd", None),
])
def test_a_class_ref_the_table_does_not_list_never_takes_a_level_name(
        browser: Browser, class_ref: str, acr: str | None) -> None:
    """Asked for mfa, such a login is refused. Not asked, it must not get into tokens as mfa
    (or pwd) either: an API that trusts acr == "mfa" would take it for the login it refuses."""
    asked = start(browser, acr_values="mfa")
    refused(browser, asked, browser.signed_response(asked, class_ref=class_ref),
            code="authn_context_unmet")
    login = start(browser)
    code = browser.code_from(browser.post_acs(browser.signed_response(login, class_ref=class_ref)),
                             login)
    body = browser.exchange(code, login.verifier, client_id="web2",
                            redirect_uri=WEB2["redirect_uris"][0]).get_json()
    for token in (body["access_token"], body["id_token"]):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims.get("acr") == acr and "amr" not in claims, claims


@pytest.mark.parametrize("params", [{}, {"prompt": "login", "max_age": "0", "acr_values": "mfa"}])
def test_an_authn_instant_in_the_future_is_refused(browser: Browser,
                                                   params: dict[str, str]) -> None:
    """A year ahead, it would meet prompt=login and max_age=0, and as auth_time tell every API
    for a year that the person has just logged in, refresh after refresh."""
    login = start(browser, **params)
    future = int(time.time()) + 365 * 86400
    refused(browser, login, browser.signed_response(login, class_ref=MFA_CONTEXT,
                                                    authn_instant=future),
            code="authn_instant_in_future", error="access_denied")
    assert json.loads(browser.last_audit().detail_json)["seconds_ahead"] >= 365 * 86400 - 5


def test_an_authn_instant_just_beyond_the_clock_skew_is_refused(browser: Browser) -> None:
    """The IdP's clock may run ahead by its clock_skew_seconds (60 here), no more."""
    beyond = start(browser)
    refused(browser, beyond, browser.signed_response(beyond, authn_instant=int(time.time()) + 90),
            code="authn_instant_in_future", error="access_denied")
    within = start(browser)
    assert browser.code_from(browser.post_acs(browser.signed_response(
        within, authn_instant=int(time.time()) + 50)), within)


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                     "0001-01-01T00:00:00+14:00"])
def test_an_authn_instant_before_1970_is_refused(browser: Browser, idp_key_dir: Path,
                                                 instant: str) -> None:
    """Signed by the IdP's own key, and still no time a login happened: refused, not stored."""
    login = start(browser)
    root = x.decode(browser.signed_response(login))
    x.one(root, ".//saml:AuthnStatement").set("AuthnInstant", instant)
    x.resign(root, x.load_keypair(idp_key_dir))
    refused(browser, login, x.encode(root), code="authn_instant_invalid", error="access_denied")
