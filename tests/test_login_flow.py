"""The whole SP-initiated flow, on SQLite and PostgreSQL: /authorize -> pysaml2 IdP -> ACS ->
code -> /token -> access JWT and refresh token."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from bridge.claims.schemas import validate_payload
from bridge.saml.subject import derive_subject
from bridge.store.models import AuthnRequestRecord, AuthorizationCode, RefreshFamily
from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import DEMO_REDIRECT, Browser


def _decode(token: str, browser: Browser) -> dict:
    jwks = browser.client.get("/.well-known/jwks.json").get_json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key.key, algorithms=["ES256"], audience="demo-api",
                      issuer="https://bridge.example.com")


def test_authorize_redirects_to_the_idp_with_a_stored_request(browser: Browser) -> None:
    response = browser.authorize()
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://idp.example.org/sso/redirect"
    assert "SAMLRequest" in parse_qs(location.query)
    assert browser.count(AuthnRequestRecord) == 1
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-bridge-login=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=None" in cookie


def test_full_login_issues_a_token_that_verifies_and_fits_schema_v1(browser: Browser) -> None:
    code, login = browser.login("alice")
    assert browser.count(AuthorizationCode) == 1
    response = browser.exchange(code, login.verifier)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url
    assert body["scope"] == "openid email"

    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = _decode(body["access_token"], browser)
    validate_payload(claims)
    assert claims["sub"] == derive_subject("https://idp.example.org/metadata", "a1b2c3d4-0001")
    assert "@" not in claims["sub"]
    assert claims["email"] == "alice@example.com"
    assert claims["name"] == "Alice Andersen"
    assert claims["groups"] == ["engineering", "bridge-admins"]
    assert claims["idp"] == "dev"
    assert claims["ver"] == 1
    assert claims["client_id"] == "demo"
    assert claims["exp"] - claims["iat"] == 600
    assert browser.count(RefreshFamily) == 1
    assert browser.last_audit().event == "token"


def test_two_users_get_different_subjects(browser: Browser) -> None:
    alice = _decode(browser.tokens("alice")["access_token"], browser)
    bob = _decode(browser.tokens("bob")["access_token"], browser)
    assert alice["sub"] != bob["sub"]
    assert bob["groups"] == ["sales"]


def test_same_user_gets_the_same_subject_at_every_login(browser: Browser) -> None:
    first = _decode(browser.tokens("alice")["access_token"], browser)
    second = _decode(browser.tokens("alice")["access_token"], browser)
    assert first["sub"] == second["sub"]
    assert first["jti"] != second["jti"]


def test_reused_code_is_refused_and_revokes_what_it_issued(browser: Browser) -> None:
    code, login = browser.login()
    first = browser.exchange(code, login.verifier)
    assert first.status_code == 200
    again = browser.exchange(code, login.verifier)
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    assert "access_token" not in again.get_json()
    # RFC 6749 §4.1.2: the tokens minted from the code are revoked too.
    refreshed = browser.refresh(first.get_json()["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"
    assert browser.last_audit().code == "refresh_token_revoked"


def test_wrong_code_verifier_is_refused(browser: Browser) -> None:
    code, login = browser.login()
    response = browser.exchange(code, "x" * 64)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert browser.count(RefreshFamily) == 0
    assert browser.last_audit().code == "pkce_mismatch"
    # The code was not consumed by the failed attempt... but it is bound to its verifier only.
    assert browser.exchange(code, login.verifier).status_code == 200


def test_missing_code_verifier_is_refused(browser: Browser) -> None:
    code, _ = browser.login()
    response = browser.exchange(code, "", code_verifier="")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert browser.count(RefreshFamily) == 0


def test_code_is_bound_to_its_redirect_uri(browser: Browser) -> None:
    code, login = browser.login()
    response = browser.exchange(code, login.verifier, redirect_uri="http://127.0.0.1:8002/other")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert browser.count(RefreshFamily) == 0


def test_code_is_bound_to_its_client(browser: Browser) -> None:
    code, login = browser.login()
    response = browser.client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": login.verifier,
        "redirect_uri": DEMO_REDIRECT,
    }, auth=("backend", CONFIDENTIAL_SECRET))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert browser.count(RefreshFamily) == 0


def test_expired_code_is_refused(browser: Browser) -> None:
    code, login = browser.login()
    with browser.bridge.db.transaction() as session:
        session.query(AuthorizationCode).update({AuthorizationCode.expires_at: 0})
    response = browser.exchange(code, login.verifier)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert browser.last_audit().code == "code_expired"


def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(browser: Browser) -> None:
    response = browser.authorize(redirect_uri="https://evil.example.net/callback")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri_invalid" in response.get_data(as_text=True)
    assert browser.count(AuthnRequestRecord) == 0


def test_redirect_uri_must_match_exactly(browser: Browser) -> None:
    for near_miss in (DEMO_REDIRECT + "/", DEMO_REDIRECT + "?x=1", DEMO_REDIRECT.upper()):
        response = browser.authorize(redirect_uri=near_miss)
        assert response.status_code == 400, near_miss
        assert "Location" not in response.headers


def test_unknown_client_is_an_error_page(browser: Browser) -> None:
    response = browser.authorize(client_id="nobody")
    assert response.status_code == 400
    assert "client_unknown" in response.get_data(as_text=True)


@pytest.mark.parametrize("overrides,error", [
    ({"code_challenge": ""}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "openid admin"}, "invalid_scope"),
])
def test_bad_authorization_requests_go_back_to_the_client(
    browser: Browser, overrides: dict[str, str], error: str
) -> None:
    response = browser.authorize(**overrides)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == DEMO_REDIRECT
    query = parse_qs(location.query)
    assert query["error"] == [error]
    assert query["state"] == [response.state]  # type: ignore[attr-defined]
    assert browser.count(AuthnRequestRecord) == 0


def test_tampered_signature_issues_nothing(browser: Browser) -> None:
    import base64

    login = browser.start()
    xml = base64.b64decode(browser.signed_response(login))
    tampered = xml.replace(b"alice@example.com", b"mallory@example.com")
    assert tampered != xml
    response = browser.post_acs(base64.b64encode(tampered).decode())
    assert response.status_code == 400
    assert response.get_json()["code"] == "saml_signature_invalid"
    assert "Location" not in response.headers
    assert browser.issued_nothing()
    event = browser.last_audit()
    assert (event.event, event.outcome, event.code) == ("login", "refused", "saml_signature_invalid")


def test_refresh_rotates_and_reuse_revokes_the_family(browser: Browser) -> None:
    first = browser.tokens()
    second = browser.refresh(first["refresh_token"])
    assert second.status_code == 200
    rotated = second.get_json()
    assert rotated["refresh_token"] != first["refresh_token"]
    claims = _decode(rotated["access_token"], browser)
    validate_payload(claims)
    third = browser.refresh(rotated["refresh_token"]).get_json()  # the client moves on

    # The first token again: reuse. The family dies, so the legitimate successor dies with it.
    reused = browser.refresh(first["refresh_token"])
    assert reused.status_code == 400
    assert reused.get_json()["error"] == "invalid_grant"
    assert "access_token" not in reused.get_json()
    assert browser.last_audit().code == "refresh_token_reused"
    successor = browser.refresh(third["refresh_token"])
    assert successor.status_code == 400
    assert successor.get_json()["error"] == "invalid_grant"
    with browser.bridge.db.transaction() as session:
        family = session.query(RefreshFamily).one()
        assert family.revoked_reason == "reuse_detected"


def test_refresh_token_is_bound_to_its_client(browser: Browser) -> None:
    tokens = browser.tokens()
    response = browser.client.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
    }, auth=("backend", CONFIDENTIAL_SECRET))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    # The rightful client can still use it: a stranger's attempt does not burn it.
    assert browser.refresh(tokens["refresh_token"]).status_code == 200


def test_refresh_can_narrow_but_never_widen_scope(browser: Browser) -> None:
    tokens = browser.tokens()
    wider = browser.client.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": "demo", "scope": "openid email groups"})
    assert wider.status_code == 400
    assert wider.get_json()["error"] == "invalid_scope"
    narrower = browser.client.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": "demo", "scope": "openid"})
    assert narrower.status_code == 200
    assert narrower.get_json()["scope"] == "openid"


def test_revoke_kills_the_family(browser: Browser) -> None:
    tokens = browser.tokens()
    response = browser.client.post("/revoke", data={"token": tokens["refresh_token"],
                                                    "client_id": "demo"})
    assert response.status_code == 200
    assert browser.refresh(tokens["refresh_token"]).status_code == 400
    # RFC 7009 §2.2: an unknown token is not an error.
    assert browser.client.post("/revoke", data={"token": "nonsense",
                                                "client_id": "demo"}).status_code == 200


@pytest.mark.parametrize("form,status,error", [
    ({"grant_type": "password", "client_id": "demo"}, 400, "unsupported_grant_type"),
    ({"client_id": "demo"}, 400, "invalid_request"),
    ({"grant_type": "authorization_code", "client_id": "nobody", "code": "x"}, 401,
     "invalid_client"),
    ({"grant_type": "authorization_code", "client_id": "backend", "code": "x",
      "client_secret": "wrong"}, 401, "invalid_client"),
    ({"grant_type": "authorization_code", "client_id": "demo", "code": "unknown"}, 400,
     "invalid_grant"),
])
def test_token_endpoint_errors_follow_rfc6749(browser: Browser, form: dict[str, str],
                                              status: int, error: str) -> None:
    response = browser.client.post("/token", data=form)
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert "access_token" not in response.get_json()
