"""RFC 7522 SAML bearer assertion grant: every check of the ACS path, at the token endpoint."""

from __future__ import annotations

import base64
from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient
from lxml import etree

from bridge.claims.schemas import validate_payload
from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.saml.idp import MAX_CLOCK_SKEW
from bridge.store.db import Database
from bridge.store.maintenance import purge_expired
from bridge.web import create_app
from tests.attacks import xml_tools as x
from tests.attacks.conftest import LOGIN_START, Attack, clone, fixed_clock, restarted_with_skew
from tests.conftest import CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, DEMO_CLIENT, make_settings

TOKEN_URL = "https://bridge.example.com/token"
GRANT = "urn:ietf:params:oauth:grant-type:saml2-bearer"
BACKEND = {**CONFIDENTIAL_CLIENT, "allow_saml_bearer": True}


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             other_idp: DevIdp, portal_idp: DevIdp) -> Settings:
    demo = {**DEMO_CLIENT, "login_start_uri": LOGIN_START}
    return make_settings(database, idp_dir, tmp_path, clients=[demo, BACKEND])


def _assertion(attack: Attack, *, recipient: str = TOKEN_URL, keys: x.KeyPair | None = None,
               change=None) -> etree._Element:  # type: ignore[no-untyped-def]
    """An assertion from the pysaml2 IdP, addressed to the token endpoint and signed again."""
    _, root = attack.fresh()
    assertion = clone(x.assertion(root))
    confirmation = assertion.find(f".//{{{x.SAML}}}SubjectConfirmationData")
    confirmation.set("Recipient", recipient)
    confirmation.attrib.pop("InResponseTo", None)
    if change:
        change(assertion)
    x.sign(assertion, keys or attack.idp_keys)
    return assertion


def _grant(attack: Attack, assertion: etree._Element | str, client: str = "backend",  # type: ignore[no-untyped-def]
           http: FlaskClient | None = None):
    encoded = assertion if isinstance(assertion, str) else base64.urlsafe_b64encode(
        etree.tostring(assertion)).rstrip(b"=").decode()
    return (http or attack.browser.client).post("/token", data={
        "grant_type": GRANT, "assertion": encoded, "scope": "openid email"},
        auth=(client, CONFIDENTIAL_SECRET) if client == "backend" else None)


def test_signed_assertion_becomes_an_access_token(attack: Attack) -> None:
    response = _grant(attack, _assertion(attack))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert "refresh_token" not in body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    validate_payload(claims)
    assert claims["aud"] == "backend-api" and claims["email"] == "alice@example.com"


def test_replayed_assertion_is_refused(attack: Attack) -> None:
    assertion = _assertion(attack)
    assert _grant(attack, assertion).status_code == 200
    again = _grant(attack, assertion)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert attack.browser.last_audit().code == "saml_replay"


def test_assertion_replayed_after_the_skew_was_raised_is_refused(attack: Attack,
                                                                 settings: Settings,
                                                                 idp_dir: Path) -> None:
    """The replay-cache row must outlive the assertion under any skew the IdP may be given: here
    it is used, expires (5 minutes plus the 60 s skew), the purge job runs, and then the operator
    raises the IdP's skew to the maximum and restarts."""
    clock = fixed_clock(attack.browser.bridge)
    assertion = _assertion(attack)
    assert _grant(attack, assertion).status_code == 200
    clock.advance(5 * 60 + 90)
    purge_expired(attack.browser.bridge.db, now=clock.now())
    node = restarted_with_skew(settings, idp_dir, "dev", MAX_CLOCK_SKEW, clock)
    try:
        again = _grant(attack, assertion, http=create_app(services=node).test_client())
    finally:
        node.db.dispose()
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert attack.browser.last_audit().code == "saml_replay"


@pytest.mark.parametrize("case,code", [
    ("web_sso_assertion", "saml_recipient_mismatch"),
    ("attacker_key", "saml_signature_invalid"),
    ("tampered", "saml_signature_invalid"),
    ("unsigned", "saml_signature_missing"),
    ("other_audience", "saml_audience_mismatch"),
    ("unknown_issuer", "saml_issuer_mismatch"),
])
def test_bad_assertions_are_invalid_grants(attack: Attack, case: str, code: str) -> None:
    if case == "web_sso_assertion":
        assertion = _assertion(attack, recipient="https://bridge.example.com/saml/dev/acs")
    elif case == "attacker_key":
        assertion = _assertion(attack, keys=x.attacker_keypair())
    elif case == "tampered":
        assertion = _assertion(attack)
        assertion.find(f".//{{{x.SAML}}}NameID").text = "admin"
    elif case == "unsigned":
        assertion = _assertion(attack)
        x.strip_signature(assertion)
    elif case == "other_audience":
        assertion = _assertion(attack, change=lambda a: setattr(
            a.find(f".//{{{x.SAML}}}Audience"), "text", "https://other.example.com"))
    else:
        assertion = _assertion(attack, change=lambda a: setattr(
            a.find(f"{{{x.SAML}}}Issuer"), "text", "https://nobody.example.com"))
    response = _grant(attack, assertion)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert "access_token" not in response.get_json()
    assert attack.browser.last_audit().code == code


def test_only_allowed_confidential_clients(attack: Attack) -> None:
    response = attack.browser.client.post("/token", data={
        "grant_type": GRANT, "assertion": "x", "client_id": "demo"})
    assert response.get_json()["error"] == "unauthorized_client"


@pytest.mark.parametrize(("instant", "code"), [("2099-01-01T00:00:00Z", "authn_instant_in_future"),
                                               ("1969-07-20T20:17:00Z", "authn_instant_invalid")])
@pytest.mark.parametrize("class_ref", ["plain", "with markup"])
def test_an_implausible_authn_instant_is_an_invalid_grant(attack: Attack, instant: str,
                                                          code: str, class_ref: str) -> None:
    """It would be the token's auth_time: a future one claims a login that has just happened.
    It is refused before the rest of the facts are read (a class reference holding markup,
    which the grant refuses otherwise, does not change the refusal)."""

    def change(assertion: etree._Element) -> None:
        assertion.find(f".//{{{x.SAML}}}AuthnStatement").set("AuthnInstant", instant)
        if class_ref == "with markup":
            assertion.find(f".//{{{x.SAML}}}AuthnContextClassRef").append(
                etree.Element(f"{{{x.SAML}}}Extra"))

    assertion = _assertion(attack, change=change)
    response = _grant(attack, assertion)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert "access_token" not in response.get_json()
    assert attack.browser.last_audit().code == code
