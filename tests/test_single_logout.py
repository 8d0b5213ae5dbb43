"""SAML Single Logout started by the IdP: a signed LogoutRequest ends every login of that SAML
session, and nothing else; unsigned or forged ones are refused."""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask.testing import FlaskClient
from saml2.samlp import LogoutRequest

from bridge.audit import audit_events
from bridge.clock import FixedClock, SystemClock
from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.oauth.revocation import Revocation
from bridge.saml.logout import LOGOUT_REQUEST_LIFETIME_SECONDS
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.maintenance import purge_expired
from bridge.store.models import RefreshFamily
from bridge.web import create_app
from tests.conftest import make_settings, test_sp_metadata
from tests.helpers import Browser

SLO = "https://bridge.example.com/saml/dev/slo"
EC_SLO = "https://bridge.example.com/saml/ec/slo"
SP_ENTITY_ID = "https://bridge.example.com/saml/metadata"


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             ec_idp: DevIdp) -> Settings:
    """The test IdP (RSA) and one with an EC P-256 key."""
    return make_settings(database, idp_dir, tmp_path)


def _session(browser: Browser) -> tuple[dict, str]:
    tokens = browser.tokens()
    with browser.bridge.db.transaction() as session:
        family = session.query(RefreshFamily).order_by(RefreshFamily.created_at.desc()).first()
        return tokens, str(family.session_index)


def _get(browser: Browser, url: str):  # type: ignore[no-untyped-def]
    parts = urlsplit(url)
    return browser.client.get(parts.path + "?" + parts.query, headers={"Accept": "application/json"})


def test_idp_logout_ends_that_session_only(browser: Browser, dev_idp: DevIdp) -> None:
    first, index = _session(browser)
    other, _ = _session(browser)
    url = dev_idp.logout_request_url(SLO, "https://bridge.example.com/saml/metadata",
                                     "a1b2c3d4-0001", [index])
    assert "Signature=" in url
    response = _get(browser, url)
    assert response.status_code == 302
    back = response.headers["Location"]
    assert back.startswith("https://idp.example.org/slo/redirect?SAMLResponse=")
    assert parse_qs(urlsplit(back).query)["SAMLResponse"]
    assert browser.refresh(first["refresh_token"]).status_code == 400
    assert browser.refresh(other["refresh_token"]).status_code == 200  # another SAML session
    logouts = [e for e in audit_events(browser.bridge.db) if e["event"] == "idp_logout"]
    assert [e["detail"]["families"] for e in logouts] == [1]


def test_unsigned_logout_request_is_refused(browser: Browser, dev_idp: DevIdp) -> None:
    first, index = _session(browser)
    url = dev_idp.logout_request_url(SLO, "https://bridge.example.com/saml/metadata",
                                     "a1b2c3d4-0001", [index])
    parts = urlsplit(url)
    unsigned = "&".join(p for p in parts.query.split("&") if not p.startswith(("Signature=",
                                                                              "SigAlg=")))
    response = browser.client.get(f"{parts.path}?{unsigned}", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_signature_missing"
    assert browser.refresh(first["refresh_token"]).status_code == 200


def test_tampered_logout_request_is_refused(browser: Browser, dev_idp: DevIdp) -> None:
    first, index = _session(browser)
    url = dev_idp.logout_request_url(SLO, "https://bridge.example.com/saml/metadata",
                                     "a1b2c3d4-0001", [index])
    other_url = dev_idp.logout_request_url(SLO, "https://bridge.example.com/saml/metadata",
                                           "a1b2c3d4-0002", ["other-session"])
    # Another request's SAMLRequest under this request's signature.
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    query["SAMLRequest"] = dict(p.split("=", 1) for p in urlsplit(other_url).query.split("&"))[
        "SAMLRequest"]
    forged = "&".join(f"{k}={v}" for k, v in query.items())
    response = browser.client.get(f"/saml/dev/slo?{forged}", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_signature_invalid"


def test_logout_request_for_another_destination_is_refused(browser: Browser,
                                                           dev_idp: DevIdp) -> None:
    _, index = _session(browser)
    url = dev_idp.logout_request_url("https://elsewhere.example.com/slo",
                                     "https://bridge.example.com/saml/metadata",
                                     "a1b2c3d4-0001", [index])
    parts = urlsplit(url)
    response = browser.client.get(f"/saml/dev/slo?{parts.query}",
                                  headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_destination_mismatch"


def test_sp_metadata_lists_the_single_logout_endpoints(browser: Browser) -> None:
    assert SLO.encode() in browser.client.get("/saml/metadata").data


# --- a captured LogoutRequest: replays and stale requests end nothing ---------------------------

def _alice_logout_url(idp: DevIdp, **kwargs: Any) -> str:
    """A LogoutRequest for alice without SessionIndex: it ends every login of her NameID, so a
    replay of it would also end logins made after it was sent."""
    return idp.logout_request_url(SLO, SP_ENTITY_ID, USERS["alice"].persistent_id, [], **kwargs)


def _issued(seconds_from_now: float) -> Callable[[LogoutRequest], None]:
    instant = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)

    def edit(request: LogoutRequest) -> None:
        request.issue_instant = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    return edit


def _refused(browser: Browser, url: str, code: str) -> None:
    response = _get(browser, url)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == code
    event = browser.last_audit()
    assert (event.event, event.outcome, event.code) == ("idp_logout", "refused", code)


def _logouts(browser: Browser) -> list[dict[str, Any]]:
    return [e for e in audit_events(browser.bridge.db) if e["event"] == "idp_logout"]


def test_replayed_logout_request_is_refused_and_later_logins_survive(browser: Browser,
                                                                    dev_idp: DevIdp) -> None:
    first = browser.tokens()
    url = _alice_logout_url(dev_idp)
    assert _get(browser, url).status_code == 302
    assert browser.refresh(first["refresh_token"]).status_code == 400
    later = browser.tokens()  # alice signs in again after the logout

    _refused(browser, url, "saml_replay")
    assert browser.refresh(later["refresh_token"]).status_code == 200
    assert [e["outcome"] for e in _logouts(browser)] == ["refused", "success"]


def test_logout_request_replayed_at_another_node_is_refused(browser: Browser, dev_idp: DevIdp,
                                                            settings: Settings) -> None:
    url = _alice_logout_url(dev_idp)
    assert _get(browser, url).status_code == 302
    later = browser.tokens()
    # A second bridge process on the same database, as behind a load balancer.
    other_node = build_services(settings, SystemClock())
    try:
        response = create_app(services=other_node).test_client().get(
            urlsplit(url).path + "?" + urlsplit(url).query, headers={"Accept": "application/json"})
    finally:
        other_node.db.dispose()
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_replay"
    assert browser.refresh(later["refresh_token"]).status_code == 200


def test_logout_request_replayed_after_its_window_is_refused(browser: Browser, dev_idp: DevIdp,
                                                             bridge: Services) -> None:
    """The replay-cache row may be purged only once the request is too old to be accepted."""
    clock = FixedClock(bridge.clock.now())
    bridge.clock = clock
    bridge.keys.clock = clock
    url = _alice_logout_url(dev_idp)
    assert _get(browser, url).status_code == 302
    later = browser.tokens()
    for wait in (60, 300, 600):  # still refused (replay, then too old), before and after purges
        clock.advance(wait)
        purge_expired(bridge.db, now=clock.now())
        response = _get(browser, url)
        assert response.status_code == 400
        assert response.get_json()["code"] in ("saml_replay", "saml_expired")
    assert response.get_json()["code"] == "saml_expired"
    assert browser.refresh(later["refresh_token"]).status_code == 200


@pytest.mark.parametrize(("seconds_from_now", "code"), [
    (-3600, "saml_expired"),  # captured an hour ago
    (-(60 + LOGOUT_REQUEST_LIFETIME_SECONDS + 5), "saml_expired"),  # just past skew + lifetime
    (3600, "saml_not_yet_valid"),
    (60 + 5, "saml_not_yet_valid"),  # just past the default skew
])
def test_logout_request_outside_its_time_window_is_refused(browser: Browser, dev_idp: DevIdp,
                                                           seconds_from_now: int,
                                                           code: str) -> None:
    tokens = browser.tokens()
    _refused(browser, _alice_logout_url(dev_idp, edit=_issued(seconds_from_now)), code)
    assert browser.refresh(tokens["refresh_token"]).status_code == 200


def test_logout_request_without_issue_instant_is_refused(browser: Browser,
                                                         dev_idp: DevIdp) -> None:
    tokens = browser.tokens()
    url = _alice_logout_url(dev_idp, edit=lambda request: setattr(request, "issue_instant", None))
    assert "IssueInstant" not in zlib.decompress(
        base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15).decode()
    _refused(browser, url, "saml_malformed")
    assert browser.refresh(tokens["refresh_token"]).status_code == 200


def test_logout_request_id_longer_than_the_replay_cache_holds_is_refused(
        browser: Browser, dev_idp: DevIdp) -> None:
    tokens = browser.tokens()
    url = _alice_logout_url(dev_idp, edit=lambda request: setattr(request, "id", "_" + "a" * 256))
    _refused(browser, url, "saml_malformed")
    assert browser.refresh(tokens["refresh_token"]).status_code == 200


def test_logout_request_from_an_idp_clock_within_the_skew_is_accepted(browser: Browser,
                                                                      dev_idp: DevIdp) -> None:
    tokens = browser.tokens()
    assert _get(browser, _alice_logout_url(dev_idp, edit=_issued(-100))).status_code == 302
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
    tokens = browser.tokens()
    assert _get(browser, _alice_logout_url(dev_idp, edit=_issued(50))).status_code == 302
    assert browser.refresh(tokens["refresh_token"]).status_code == 400


# --- ECDSA: the HTTP-Redirect Signature is r||s (XML-DSig), as xmlsec and Santuario send it ------

@pytest.fixture(scope="session")
def session_ec_idp(tmp_path_factory: pytest.TempPathFactory) -> DevIdp:
    return DevIdp(base_url="https://ec-idp.example.org", key_type="ec",
                  state_dir=tmp_path_factory.mktemp("ec-idp-keys"), sp_metadata=test_sp_metadata)


@pytest.fixture
def ec_idp(session_ec_idp: DevIdp, idp_dir: Path) -> DevIdp:
    """An IdP whose metadata holds an EC P-256 certificate (slug "ec")."""
    session_ec_idp.write_metadata(idp_dir, slug="ec")
    return session_ec_idp


@pytest.fixture
def ec_browser(client: FlaskClient, ec_idp: DevIdp, bridge: Services) -> Browser:
    return Browser(client, ec_idp, bridge)


def _ec_tokens(browser: Browser) -> dict[str, Any]:
    login = browser.start(idp="ec")
    code = browser.code_from(browser.post_acs(browser.signed_response(login), "ec"), login)
    response = browser.exchange(code, login.verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def _ec_logout_url(idp: DevIdp) -> str:
    return idp.logout_request_url(EC_SLO, SP_ENTITY_ID, USERS["alice"].persistent_id, [])


def test_ecdsa_signed_logout_request_is_accepted(ec_browser: Browser, ec_idp: DevIdp) -> None:
    key = x509.load_pem_x509_certificate(
        ec_idp.metadata_xml().split(b"X509Certificate>")[1].split(b"<")[0].join(
            (b"-----BEGIN CERTIFICATE-----\n", b"\n-----END CERTIFICATE-----\n"))).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    tokens = _ec_tokens(ec_browser)
    url = _ec_logout_url(ec_idp)
    query = parse_qs(urlsplit(url).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"]
    assert len(base64.b64decode(query["Signature"][0])) == 64  # r||s, not DER

    response = _get(ec_browser, url)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert ec_browser.refresh(tokens["refresh_token"]).status_code == 400
    assert [e["detail"]["families"] for e in _logouts(ec_browser)] == [1]


def test_ecdsa_signature_in_der_form_is_refused(ec_browser: Browser, ec_idp: DevIdp) -> None:
    """The same r and s DER-encoded: not what XML-DSig defines for this parameter (and not what
    cryptography verifies after the conversion), so it is refused cleanly, not with a 500."""
    tokens = _ec_tokens(ec_browser)
    url = _ec_logout_url(ec_idp)
    signature = base64.b64decode(parse_qs(urlsplit(url).query)["Signature"][0])
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    base, _, _ = url.partition("&Signature=")
    forged = f"{base}&Signature={quote_plus(base64.b64encode(der).decode())}"
    _refused(ec_browser, forged, "saml_signature_invalid")
    assert ec_browser.refresh(tokens["refresh_token"]).status_code == 200


def test_a_code_issued_before_the_idp_logout_cannot_be_exchanged_after(browser: Browser,
                                                                       dev_idp: DevIdp) -> None:
    code, login = browser.login()  # the browser has the code; the app has not exchanged it yet
    assert _get(browser, _alice_logout_url(dev_idp)).status_code == 302
    late = browser.exchange(code, login.verifier)
    assert (late.status_code, late.get_json()["error"]) == (400, "invalid_grant")


def test_a_code_issued_before_revoke_all_cannot_be_exchanged_after(browser: Browser,
                                                                   bridge: Services) -> None:
    subject = jwt.decode(browser.tokens()["access_token"], options={"verify_signature": False})["sub"]
    code, login = browser.login()
    assert Revocation(bridge).revoke_all(subject=subject, actor="test") == 1
    late = browser.exchange(code, login.verifier)
    assert (late.status_code, late.get_json()["error"]) == (400, "invalid_grant")
