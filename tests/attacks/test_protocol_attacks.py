"""Protocol attacks: replay, request binding, exact URLs, time windows, issuer confusion, status,
subject and attribute games, RelayState, IdP-initiated login. Content changes are signed again
with the IdP's own key, so these play an IdP (or a proxy) that really sent such a response."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from lxml import etree

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.saml import ns
from bridge.saml.idp import MAX_CLOCK_SKEW
from bridge.store.maintenance import purge_expired
from bridge.store.models import AuditEvent, AuthnRequestRecord
from bridge.web import create_app
from tests.attacks import xml_tools as x
from tests.attacks.conftest import LOGIN_START, Attack, clone, fixed_clock, restarted_with_skew

SP_ENTITY = "https://bridge.example.com/saml/metadata"
ACS = "https://bridge.example.com/saml/dev/acs"


def _conditions(root: etree._Element) -> etree._Element:
    return x.one(root, "//saml:Assertion/saml:Conditions")


def _confirmation(root: etree._Element) -> etree._Element:
    return x.one(root, "//saml:SubjectConfirmation/saml:SubjectConfirmationData")


def _claims(attack: Attack, code: str, login) -> dict:  # type: ignore[no-untyped-def]
    tokens = attack.browser.exchange(code, login.verifier).get_json()
    return jwt.decode(tokens["access_token"], options={"verify_signature": False})


# --- replay ------------------------------------------------------------------------------------------

def test_replay_of_an_accepted_response(attack: Attack) -> None:
    login, root = attack.fresh()
    attack.accepted(attack.post(root), login)
    before = attack.issued()
    attack.refused(attack.post(root), "saml_replay", before)


def test_rewrapped_replay_for_a_new_request(attack: Attack) -> None:
    login, root = attack.fresh()
    attack.accepted(attack.post(root), login)
    before = attack.issued()
    second = attack.browser.start(idp="dev")
    rewrapped = clone(root)
    x.strip_signature(rewrapped)
    rewrapped.set("ID", x.new_id())
    rewrapped.set("InResponseTo", second.pending.request_id)
    attack.refused(attack.post(rewrapped), "saml_replay", before)


def test_replay_cache_holds_even_if_the_request_record_is_gone(attack: Attack) -> None:
    # The assertion ID alone must stop a second acceptance (the database constraint does).
    login, root = attack.fresh()
    attack.accepted(attack.post(root), login)
    with attack.browser.bridge.db.transaction() as session:
        session.query(AuthnRequestRecord).update({AuthnRequestRecord.consumed_at: None})
    before = attack.issued()
    response = attack.post(root)
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_replay"
    assert attack.issued()[:3] == before[:3]


# --- request binding ------------------------------------------------------------------------------

def test_in_response_to_missing_while_a_request_is_outstanding(attack: Attack) -> None:
    def drop(root: etree._Element) -> None:
        root.attrib.pop("InResponseTo")
        _confirmation(root).attrib.pop("InResponseTo")

    _, root = attack.mutated(drop)
    attack.refused(attack.post(root), "saml_request_mismatch")


def test_in_response_to_names_a_request_never_sent(attack: Attack) -> None:
    def forge(root: etree._Element) -> None:
        root.set("InResponseTo", "_never-sent")
        _confirmation(root).set("InResponseTo", "_never-sent")

    _, root = attack.mutated(forge)
    attack.refused(attack.post(root), "saml_request_unknown")


def test_assertion_answers_another_request_than_the_response(attack: Attack) -> None:
    other = attack.browser.start(idp="dev")

    def split(root: etree._Element) -> None:
        _confirmation(root).set("InResponseTo", other.pending.request_id)

    _, root = attack.mutated(split)
    attack.refused(attack.post(root), "saml_request_mismatch")


def test_expired_request(attack: Attack) -> None:
    _, root = attack.fresh()
    with attack.browser.bridge.db.transaction() as session:
        session.query(AuthnRequestRecord).update({AuthnRequestRecord.expires_at: 0})
    attack.refused(attack.post(root), "saml_request_unknown")


def test_response_posted_from_another_browser(attack: Attack) -> None:
    # Login CSRF: the attacker's own valid response, submitted by the victim's browser.
    _, root = attack.fresh()
    victim = attack.browser.client.application.test_client()
    response = victim.post("/saml/dev/acs", data={"SAMLResponse": x.encode(root)},
                           headers={"Accept": "application/json"})
    attack.refused(response, "saml_browser_mismatch")


# --- exact URLs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("audience", [None, "", SP_ENTITY + ".evil.example", SP_ENTITY[:-3],
                                      "https://other-sp.example.com"])
def test_audience_missing_empty_or_not_exact(attack: Attack, audience: str | None) -> None:
    def change(root: etree._Element) -> None:
        restriction = x.one(root, "//saml:Conditions/saml:AudienceRestriction")
        if audience is None:
            restriction.getparent().remove(restriction)
        else:
            x.one(restriction, "saml:Audience").text = audience

    _, root = attack.mutated(change)
    attack.refused(attack.post(root), "saml_audience_mismatch")


def test_second_audience_restriction_for_another_sp(attack: Attack) -> None:
    # SAML Core §2.5.1.4: every AudienceRestriction must be satisfied.
    def change(root: etree._Element) -> None:
        restriction = etree.SubElement(_conditions(root), f"{{{x.SAML}}}AudienceRestriction")
        etree.SubElement(restriction, f"{{{x.SAML}}}Audience").text = "https://other-sp.example.com"

    _, root = attack.mutated(change)
    attack.refused(attack.post(root), "saml_audience_mismatch")


@pytest.mark.parametrize("destination", [None, "", ACS + "x", ACS + "/", ACS.replace("https", "http"),
                                         "https://bridge.example.com.evil.example/saml/dev/acs"])
def test_destination_missing_empty_or_not_exact(attack: Attack, destination: str | None) -> None:
    def change(root: etree._Element) -> None:
        if destination is None:
            root.attrib.pop("Destination")
        else:
            root.set("Destination", destination)

    _, root = attack.mutated(change)
    attack.refused(attack.post(root), "saml_destination_mismatch")


@pytest.mark.parametrize("recipient", [None, "", ACS + "x", "https://bridge.example.com/saml/other/acs"])
def test_recipient_missing_empty_or_not_exact(attack: Attack, recipient: str | None) -> None:
    def change(root: etree._Element) -> None:
        if recipient is None:
            _confirmation(root).attrib.pop("Recipient")
        else:
            _confirmation(root).set("Recipient", recipient)

    _, root = attack.mutated(change)
    attack.refused(attack.post(root), "saml_recipient_mismatch")


def test_host_header_does_not_move_the_acs(attack: Attack) -> None:
    # A response addressed to an attacker's host, posted with that Host header, is still refused:
    # the ACS URL comes from base_url, never from the request.
    evil = "https://evil.example.net/saml/dev/acs"

    def change(root: etree._Element) -> None:
        root.set("Destination", evil)
        _confirmation(root).set("Recipient", evil)

    _, root = attack.mutated(change)
    client = attack.browser.client
    cookie = client.get_cookie("__Host-bridge-login")
    assert cookie is not None
    client.set_cookie("__Host-bridge-login", cookie.value, domain="evil.example.net")
    response = client.post(
        "/saml/dev/acs", data={"SAMLResponse": x.encode(root)},
        headers={"Accept": "application/json", "Host": "evil.example.net",
                 "X-Forwarded-Host": "evil.example.net", "X-Forwarded-Proto": "https"})
    attack.refused(response, "saml_destination_mismatch")


# --- time windows (skew 60 s) ----------------------------------------------------------------------

def _at(offset: float) -> str:
    return x.saml_time(time.time() + offset)


@pytest.mark.parametrize("offset,accepted", [(45, True), (80, False)])
def test_conditions_not_before(attack: Attack, offset: int, accepted: bool) -> None:
    login, root = attack.mutated(lambda root: _conditions(root).set("NotBefore", _at(offset)))
    response = attack.post(root)
    if accepted:
        attack.accepted(response, login)
    else:
        attack.refused(response, "saml_not_yet_valid")


@pytest.mark.parametrize("offset,accepted", [(-45, True), (-80, False)])
def test_conditions_not_on_or_after(attack: Attack, offset: int, accepted: bool) -> None:
    login, root = attack.mutated(lambda root: _conditions(root).set("NotOnOrAfter", _at(offset)))
    response = attack.post(root)
    if accepted:
        attack.accepted(response, login)
    else:
        attack.refused(response, "saml_expired")


@pytest.mark.parametrize("offset,accepted", [(-45, True), (-80, False)])
def test_subject_confirmation_not_on_or_after(attack: Attack, offset: int, accepted: bool) -> None:
    login, root = attack.mutated(lambda root: _confirmation(root).set("NotOnOrAfter", _at(offset)))
    response = attack.post(root)
    if accepted:
        attack.accepted(response, login)
    else:
        attack.refused(response, "saml_expired")


@pytest.mark.parametrize("offset,accepted", [(-45, True), (-80, False)])
def test_session_not_on_or_after(attack: Attack, offset: int, accepted: bool) -> None:
    def change(root: etree._Element) -> None:
        x.one(root, "//saml:AuthnStatement").set("SessionNotOnOrAfter", _at(offset))

    login, root = attack.mutated(change)
    response = attack.post(root)
    if accepted:
        attack.accepted(response, login)
    else:
        attack.refused(response, "saml_session_expired")


def test_subject_confirmation_without_expiry(attack: Attack) -> None:
    _, root = attack.mutated(lambda root: _confirmation(root).attrib.pop("NotOnOrAfter"))
    attack.refused(attack.post(root), "saml_subject_confirmation")


def test_holder_of_key_confirmation_is_not_bearer(attack: Attack) -> None:
    def change(root: etree._Element) -> None:
        x.one(root, "//saml:SubjectConfirmation").set(
            "Method", "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key")

    _, root = attack.mutated(change)
    attack.refused(attack.post(root), "saml_subject_confirmation")


# --- issuers --------------------------------------------------------------------------------------

def test_assertion_issuer_is_another_idp(attack: Attack) -> None:
    _, root = attack.mutated(
        lambda root: setattr(x.one(root, "//saml:Assertion/saml:Issuer"), "text",
                             "https://other-idp.example.net/metadata"))
    attack.refused(attack.post(root), "saml_issuer_mismatch")


def test_response_issuer_is_another_idp(attack: Attack) -> None:
    _, root = attack.mutated(
        lambda root: setattr(x.one(root, "/samlp:Response/saml:Issuer"), "text",
                             "https://other-idp.example.net/metadata"))
    attack.refused(attack.post(root), "saml_issuer_mismatch")


def test_other_idp_answers_this_idps_request_at_this_acs(attack: Attack, other_idp: DevIdp) -> None:
    login = attack.browser.start(idp="dev")
    foreign = other_idp.response_for(login.pending, USERS["alice"])
    attack.refused(attack.post(foreign), "saml_signature_invalid")


def test_other_idp_answers_this_idps_request_at_its_own_acs(attack: Attack,
                                                          other_idp: DevIdp) -> None:
    login = attack.browser.start(idp="dev")
    foreign = other_idp.response_for(login.pending, USERS["alice"],
                                     acs_url="https://bridge.example.com/saml/other/acs")
    attack.refused(attack.post(foreign, slug="other"), "saml_request_unknown")


def test_other_idp_claims_to_be_this_idp(attack: Attack, other_idp: DevIdp) -> None:
    login = attack.browser.start(idp="dev")
    root = x.decode(other_idp.response_for(login.pending, USERS["alice"]))
    for issuer in root.iter(f"{{{x.SAML}}}Issuer"):
        issuer.text = "https://idp.example.org/metadata"
    x.resign(root, x.load_keypair(other_idp.state_dir))
    attack.refused(attack.post(root), "saml_signature_invalid")


# --- status, subject, attributes -------------------------------------------------------------------

def test_failed_status_carrying_an_assertion(attack: Attack) -> None:
    _, root = attack.mutated(lambda root: x.one(root, "//samlp:StatusCode").set(
        "Value", "urn:oasis:names:tc:SAML:2.0:status:Requester"))
    attack.refused(attack.post(root), "saml_status_not_success")


def test_nameid_missing(attack: Attack) -> None:
    _, root = attack.mutated(lambda root: x.name_id(root).getparent().remove(x.name_id(root)))
    attack.refused(attack.post(root), "saml_subject_missing")


def test_nameid_empty(attack: Attack) -> None:
    _, root = attack.mutated(lambda root: setattr(x.name_id(root), "text", "  "))
    attack.refused(attack.post(root), "saml_subject_missing")


def test_transient_nameid_is_not_a_subject(attack: Attack) -> None:
    _, root = attack.mutated(lambda root: x.name_id(root).set("Format", ns.NAMEID_TRANSIENT))
    attack.refused(attack.post(root), "saml_subject_transient")


def test_duplicate_attributes(attack: Attack) -> None:
    def duplicate(root: etree._Element) -> None:
        groups = x.one(root, "//saml:Attribute[@Name='urn:oid:1.3.6.1.4.1.5923.1.5.1.1']")
        copy = clone(groups)
        x.one(copy, "saml:AttributeValue[1]").text = "domain-admins"
        groups.addnext(copy)

    _, root = attack.mutated(duplicate)
    attack.refused(attack.post(root), "saml_attribute_duplicate")


def test_attribute_value_holding_markup(attack: Attack) -> None:
    def nest(root: etree._Element) -> None:
        value = x.one(root, "//saml:Attribute[@Name='urn:oid:1.3.6.1.4.1.5923.1.5.1.1']"
                            "/saml:AttributeValue[1]")
        etree.SubElement(value, "b").tail = "admins"

    _, root = attack.mutated(nest)
    attack.refused(attack.post(root), "saml_attribute_invalid")


def test_email_attribute_that_is_not_an_address(attack: Attack) -> None:
    _, root = attack.mutated(lambda root: setattr(x.one(
        root, "//saml:Attribute[@Name='urn:oid:0.9.2342.19200300.100.1.3']/saml:AttributeValue"),
        "text", "not-an-address"))
    attack.refused(attack.post(root), "claims_attribute_invalid")


def test_attributes_named_like_reserved_claims_set_nothing(attack: Attack) -> None:
    reserved = {"iss": "https://evil.example", "sub": "admin", "aud": "any-api", "exp": "9999999999",
                "jti": "fixed", "client_id": "other", "ver": "2", "idp": "other", "auth_time": "0"}

    def add(root: etree._Element) -> None:
        statement = x.one(root, "//saml:AttributeStatement")
        for name, value in reserved.items():
            attribute = etree.SubElement(statement, f"{{{x.SAML}}}Attribute", Name=name)
            etree.SubElement(attribute, f"{{{x.SAML}}}AttributeValue").text = value

    login, root = attack.mutated(add)
    claims = _claims(attack, attack.accepted(attack.post(root), login), login)
    assert claims["iss"] == "https://bridge.example.com"
    assert claims["aud"] == "demo-api"
    assert claims["client_id"] == "demo"
    assert claims["ver"] == 1 and claims["idp"] == "dev"
    assert claims["sub"] != "admin" and claims["jti"] != "fixed"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["auth_time"] > 0


def test_assertion_id_longer_than_the_replay_cache_holds_is_refused(attack: Attack) -> None:
    """An ID the replay cache cannot store (256 characters) is refused the same way on SQLite and
    PostgreSQL, as malformed, rather than accepted on one and a 500 on the other."""
    login, root = attack.mutated(lambda r: x.assertion(r).set("ID", "_" + "a" * 256))
    attack.refused(attack.post(root), "saml_malformed")


# --- RelayState and IdP-initiated login ------------------------------------------------------------

PORTAL_ACS = "https://bridge.example.com/saml/portal/acs"


def _unsolicited(idp: DevIdp, acs: str = PORTAL_ACS) -> str:
    return idp.response_for(None, USERS["alice"], acs_url=acs, sp_entity_id=SP_ENTITY)


def test_relay_state_is_ignored_in_sp_initiated_logins(attack: Attack) -> None:
    login, root = attack.fresh()
    response = attack.post(root, RelayState="https://evil.example/steal")
    attack.accepted(response, login)  # goes to the registered redirect_uri, and only there


def test_idp_initiated_login_goes_to_the_client_login_start(attack: Attack,
                                                           portal_idp: DevIdp) -> None:
    saml_response = _unsolicited(portal_idp)
    response = attack.post(saml_response, slug="portal", RelayState="demo")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOGIN_START
    assert parse_qs(location.query) == {"iss": ["https://bridge.example.com"], "idp": ["portal"]}
    assert attack.issued() == (0, 0, 0, 0)  # no code, no token: the client starts a real login
    event = attack.browser.last_audit()
    assert (event.event, event.outcome) == ("login_idp_initiated", "redirected")
    before = attack.issued()
    attack.refused(attack.post(saml_response, slug="portal"), "saml_replay", before)


def test_idp_initiated_response_replayed_after_the_skew_was_raised_is_refused(
        attack: Attack, portal_idp: DevIdp, settings: Settings, idp_dir: Path) -> None:
    """Used once; then past its NotOnOrAfter plus the 60 s skew, purged, and the operator raises
    the IdP's skew to the maximum: the replay cache still knows the assertion."""
    clock = fixed_clock(attack.browser.bridge)
    saml_response = _unsolicited(portal_idp)
    assert attack.post(saml_response, slug="portal", RelayState="demo").status_code == 302
    clock.advance(5 * 60 + 90)
    purge_expired(attack.browser.bridge.db, now=clock.now())
    node = restarted_with_skew(settings, idp_dir, "portal", MAX_CLOCK_SKEW, clock)
    try:
        response = create_app(services=node).test_client().post(
            "/saml/portal/acs", data={"SAMLResponse": saml_response, "RelayState": "demo"},
            headers={"Accept": "application/json"})
    finally:
        node.db.dispose()
    attack.refused(response, "saml_replay")


@pytest.mark.parametrize("relay_state", ["https://evil.example/", "//evil.example", "javascript:alert(1)",
                                         "/\\evil.example", "demo@evil.example", " demo",
                                         "backend"])
def test_relay_state_open_redirect_payloads(attack: Attack, portal_idp: DevIdp,
                                            relay_state: str) -> None:
    response = attack.post(_unsolicited(portal_idp), slug="portal", RelayState=relay_state)
    attack.refused(response, "saml_relay_state_invalid")


def test_idp_initiated_login_is_off_by_default(attack: Attack, session_dev_idp: DevIdp) -> None:
    response = attack.post(_unsolicited(session_dev_idp, ACS))
    attack.refused(response, "saml_unsolicited")


def test_unsolicited_response_while_a_request_is_outstanding(attack: Attack,
                                                            portal_idp: DevIdp) -> None:
    assert attack.browser.authorize(idp="portal").status_code == 302
    response = attack.post(_unsolicited(portal_idp), slug="portal", RelayState="demo")
    attack.refused(response, "saml_request_mismatch")


def test_every_refusal_is_audited_with_its_reason(attack: Attack) -> None:
    _, root = attack.fresh()
    x.name_id(root).text = "admin"
    response = attack.post(root)
    error_id = response.get_json()["error_id"]
    with attack.browser.bridge.db.transaction() as session:
        event = session.query(AuditEvent).filter_by(error_id=error_id).one()
    assert (event.code, event.idp_slug, event.client_id) == ("saml_signature_invalid", "dev", "demo")
    assert "xmlsec" in event.detail_json
