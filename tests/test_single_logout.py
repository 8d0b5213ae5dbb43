"""SAML Single Logout started by the IdP: a signed LogoutRequest ends every login of that SAML
session, and nothing else; unsigned or forged ones are refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from bridge.dev.saml_idp import DevIdp
from bridge.store.models import RefreshFamily
from tests.helpers import Browser

SLO = "https://bridge.example.com/saml/dev/slo"


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
    logouts = [e for e in browser.bridge.audit_events() if e["event"] == "idp_logout"]
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
