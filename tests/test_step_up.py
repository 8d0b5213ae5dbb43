"""Step-up and re-authentication through SAML, end to end with the pysaml2 IdP: acr_values,
max_age and prompt become the AuthnRequest's RequestedAuthnContext, ForceAuthn and IsPassive; the
tokens say what the IdP asserted; a refresh never upgrades."""

from __future__ import annotations

import base64
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import sqlalchemy as sa
from lxml import etree

from bridge.claims.authn_levels import MICROSOFT_MFA, NONE, REFEDS_MFA, parse_authn_contexts
from bridge.claims.schemas import validate_payload
from bridge.config import Settings
from bridge.dev.saml_idp import MFA_CONTEXT, PASSWORD_CONTEXT, DevIdp
from bridge.errors import ConfigError
from bridge.idps.settings import parse_idp_settings
from bridge.oauth.deprovisioned import deprovision
from bridge.saml import ns
from bridge.store.db import Database
from bridge.store.models import AuthorizationCode
from bridge.tokens.secrets_util import secret_hash
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser, Login, pkce_pair
from tests.upgrades import row, upgraded_from

WEB2 = {"client_id": "web2", "redirect_uris": ["https://web2.example.com/cb"],
        "audience": "https://api.example.com", "claims_version": 2, "public": True}
WEB2_REDIRECT = WEB2["redirect_uris"][0]
MOBILE_2FA = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"


@pytest.fixture
def dev_toml_extra() -> str:
    """Settings added to the development IdP's (a test parametrizes it to change them)."""
    return ""


@pytest.fixture
def with_other_idp() -> bool:
    """Whether a second IdP is registered (a test parametrizes it to offer a choice)."""
    return False


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             dev_toml_extra: str, with_other_idp: bool,
             request: pytest.FixtureRequest) -> Settings:
    if with_other_idp:
        request.getfixturevalue("session_other_idp").write_metadata(idp_dir, slug="other")
    toml = idp_dir / "dev.toml"
    text = toml.read_text()
    if dev_toml_extra.startswith("[authn_contexts]"):  # replaces the development IdP's table
        text = text.replace('[authn_contexts]\npreset = "shibboleth"\n', "")
        toml.write_text(text + dev_toml_extra)
    else:
        toml.write_text(dev_toml_extra + text)
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, WEB2])


def start(browser: Browser, **params: str) -> Login:
    return browser.start(client_id="web2", redirect_uri=WEB2_REDIRECT, scope="openid",
                         nonce="n-1", **params)


def authn_request_xml(response_location: str) -> etree._Element:
    saml_request = parse_qs(urlsplit(response_location).query)["SAMLRequest"][0]
    return etree.fromstring(zlib.decompress(base64.b64decode(saml_request), -15))


def tokens_for(browser: Browser, login: Login, saml_response: str) -> dict:
    code = browser.code_from(browser.post_acs(saml_response), login)
    response = browser.exchange(code, login.verifier, client_id="web2",
                                redirect_uri=WEB2_REDIRECT)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_acr_values_become_a_requested_authn_context(browser: Browser) -> None:
    response = browser.authorize(client_id="web2", redirect_uri=WEB2_REDIRECT, scope="openid",
                                 acr_values="mfa")
    request = authn_request_xml(response.headers["Location"])
    requested = request.find(f"{{{ns.SAMLP}}}RequestedAuthnContext")
    assert requested is not None and requested.get("Comparison") == "exact"
    assert [r.text for r in requested] == [REFEDS_MFA]
    assert request.get("ForceAuthn") is None and request.get("IsPassive") is None
    # The IdP reads it as we sent it (pysaml2 parses the request).
    assert start(browser, acr_values="mfa").pending.requested_contexts == (REFEDS_MFA,)


@pytest.mark.parametrize(("params", "force", "passive"), [
    ({"prompt": "login"}, "true", None),
    ({"max_age": "0"}, "true", None),
    ({"max_age": "3600"}, "true", None),
    ({"prompt": "none"}, None, "true"),
    ({}, None, None),
])
def test_prompt_and_max_age_become_force_authn_and_is_passive(
        browser: Browser, params: dict[str, str], force: str | None, passive: str | None) -> None:
    response = browser.authorize(**params)
    request = authn_request_xml(response.headers["Location"])
    assert (request.get("ForceAuthn"), request.get("IsPassive")) == (force, passive)


@pytest.mark.parametrize("dev_toml_extra", ['sign_requests = "always"\n'])
def test_the_options_are_inside_the_signed_request(browser: Browser, idp_key_dir: Path) -> None:
    """With sign_requests = "always", an IdP that requires signed requests verifies the one
    carrying RequestedAuthnContext and ForceAuthn: they are covered by the signature."""
    strict = DevIdp(base_url="https://idp.example.org", state_dir=idp_key_dir,
                    sp_metadata=lambda: browser.client.get("/saml/metadata").data,
                    want_authn_requests_signed=True)
    response = browser.authorize(acr_values="mfa", prompt="login")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert "Signature" in query
    pending = strict.parse_request(query["SAMLRequest"][0], None, sigalg=query["SigAlg"][0],
                                   signature=query["Signature"][0])
    assert pending.force_authn and pending.requested_contexts == (REFEDS_MFA,)
    # Altered after signing (the context dropped), the request no longer verifies.
    tampered = base64.b64encode(zlib.compress(
        etree.tostring(_without_context(authn_request_xml(response.headers["Location"]))))[2:-4])
    with pytest.raises(Exception, match="not signed correctly"):
        strict.parse_request(tampered.decode(), None, sigalg=query["SigAlg"][0],
                             signature=query["Signature"][0])


def _without_context(request: etree._Element) -> etree._Element:
    request.remove(request.find(f"{{{ns.SAMLP}}}RequestedAuthnContext"))
    return request


def test_an_mfa_login_says_so_in_every_token(browser: Browser) -> None:
    login = start(browser, acr_values="mfa")
    instant = int(time.time()) - 5
    body = tokens_for(browser, login, browser.signed_response(login, class_ref=MFA_CONTEXT,
                                                               authn_instant=instant))
    access, id_token = claims(body["access_token"]), claims(body["id_token"])
    validate_payload(access)
    assert (access["acr"], access["amr"], access["auth_time"]) == ("mfa", ["mfa"], instant)
    assert (id_token["acr"], id_token["amr"], id_token["auth_time"]) == ("mfa", ["mfa"], instant)


def test_a_refresh_never_upgrades(browser: Browser) -> None:
    """The password login's refresh token keeps saying pwd and its own auth_time, even after
    the same person stepped up in another login."""
    first = start(browser)
    old = int(time.time()) - 600
    body = tokens_for(browser, first, browser.signed_response(first, authn_instant=old))
    assert claims(body["access_token"])["acr"] == "pwd"
    stepped = start(browser, acr_values="mfa", prompt="login")
    tokens_for(browser, stepped, browser.signed_response(stepped, class_ref=MFA_CONTEXT))
    browser.bridge.clock.advance(120)  # type: ignore[attr-defined]
    refreshed = browser.refresh(body["refresh_token"], client_id="web2")
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    access = claims(refreshed.get_json()["access_token"])
    assert (access["acr"], access["amr"], access["auth_time"]) == ("pwd", ["pwd"], old)
    assert "id_token" not in refreshed.get_json()  # the login's ID token stands (decision 26)


def test_prompt_none_and_no_passive_tell_the_client_login_required(browser: Browser) -> None:
    login = start(browser, prompt="none")
    assert login.pending.is_passive
    response = browser.post_acs(browser.idp.failure_for(login.pending))
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == WEB2_REDIRECT
    query = parse_qs(location.query)
    assert query["error"] == ["login_required"] and query["state"] == [login.state]
    assert browser.issued_nothing()
    assert (browser.last_audit().outcome, browser.last_audit().code) == ("refused",
                                                                         "idp_no_passive")


@pytest.mark.parametrize("dev_toml_extra", [
    '[authn_contexts]\npreset = "shibboleth"\ncomparison = "minimum"\n'])
def test_minimum_comparison_accepts_a_stronger_context(browser: Browser) -> None:
    login = start(browser, acr_values="pwd")
    request = authn_request_xml(browser.authorize(acr_values="pwd").headers["Location"])
    assert request.find(f"{{{ns.SAMLP}}}RequestedAuthnContext").get("Comparison") == "minimum"
    body = tokens_for(browser, login, browser.signed_response(login, class_ref=MFA_CONTEXT))
    assert claims(body["access_token"])["acr"] == "mfa"
    # And a password login meets a request for pwd.
    again = start(browser, acr_values="pwd")
    body = tokens_for(browser, again, browser.signed_response(again, class_ref=PASSWORD_CONTEXT))
    assert claims(body["access_token"])["acr"] == "pwd"


@pytest.mark.parametrize(("params", "code"), [
    ({"acr_values": "gold"}, "invalid_request"),
    ({"prompt": "consent"}, "invalid_request"),
    ({"prompt": "select_account"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "sometimes"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "1.5"}, "invalid_request"),
    ({"max_age": "99999999999"}, "invalid_request"),
    ({"acr_values": "a\u00e9"}, "invalid_request"),
    # Past Python's 4300-digit limit of int(): refused before any conversion.
    ({"max_age": "9" * 4301}, "invalid_request"),
    ({"max_age": "0" * 5000}, "invalid_request"),
])
def test_requirements_that_cannot_be_met_go_back_to_the_client(
        browser: Browser, params: dict[str, str], code: str) -> None:
    response = browser.authorize(**params)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == [code] and query["state"] == [response.state]  # type: ignore[attr-defined]
    assert "SAMLRequest" not in query


def test_discovery_lists_the_acr_values_of_the_idps(browser: Browser) -> None:
    document = browser.client.get("/.well-known/openid-configuration").get_json()
    assert document["acr_values_supported"] == ["mfa", "pwd"]


def test_the_table_is_validated_like_the_mappings() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_idp_settings({"authn_contexts": {
            "preset": "azure", "comparison": "better", "colour": 1,
            "levels": [{"acr": "has space", "class_refs": []},
                       {"acr": "mfa", "class_refs": [MICROSOFT_MFA]},
                       {"acr": "mfa2", "class_refs": [MICROSOFT_MFA]}]}}, source="corp.toml")
    problems = "\n".join(raised.value.problems)
    for expected in ("authn_contexts.colour: unknown authn_contexts setting",
                     "authn_contexts.preset: one of", "authn_contexts.comparison: one of",
                     "authn_contexts.levels[0].acr:", "authn_contexts.levels[0].class_refs:",
                     "authn_contexts.levels[2].class_refs: 'http://schemas.microsoft.com/claims/"
                     "multipleauthn' is in two levels"):
        assert expected in problems, problems


@pytest.mark.parametrize(("preset", "mfa_ref"), [
    ("adfs", MICROSOFT_MFA), ("entra", MICROSOFT_MFA), ("okta", "urn:okta:loa:2fa:any"),
    ("shibboleth", REFEDS_MFA), ("keycloak", REFEDS_MFA),
])
def test_presets_translate_both_ways(preset: str, mfa_ref: str) -> None:
    contexts = parse_authn_contexts({"preset": preset}, source="corp.toml")
    assert contexts.requested_class_refs(("mfa",))[0] == mfa_ref
    assert contexts.acr_amr(mfa_ref) == ("mfa", ("mfa",))
    assert contexts.satisfies(mfa_ref, ("mfa",))
    assert not contexts.satisfies(PASSWORD_CONTEXT, ("mfa",))


def test_google_offers_no_second_factor_level() -> None:
    contexts = parse_authn_contexts({"preset": "google"}, source="corp.toml")
    assert contexts.acr_values == ("pwd",)


@pytest.mark.parametrize(("params", "age"), [
    ({"prompt": "none"}, 3600),      # single sign-on from an earlier login, without interaction
    ({"max_age": "600"}, 30),
    ({"prompt": "login"}, -2),       # authenticated again, after the request
    ({"max_age": "600", "acr_values": "pwd mfa"}, 30),
])
def test_a_login_that_meets_the_requirement_is_issued(browser: Browser, params: dict[str, str],
                                                      age: int) -> None:
    login = start(browser, **params)
    browser.bridge.clock.advance(max(0, -age))  # type: ignore[attr-defined]
    instant = int(time.time()) - age
    body = tokens_for(browser, login, browser.signed_response(login, authn_instant=instant))
    assert claims(body["access_token"])["auth_time"] == instant


@pytest.mark.parametrize("preset", ["adfs", "entra", "okta", "shibboleth", "keycloak", "google"])
def test_a_class_ref_a_table_does_not_list_keeps_its_own_name(preset: str) -> None:
    """With a table, only the level that lists a reference names it in tokens: an unlisted
    one is passed through as sent, with no amr, and one spelled like a level gives no acr."""
    contexts = parse_authn_contexts({"preset": preset}, source="corp.toml")
    assert contexts.acr_amr(MOBILE_2FA) == (MOBILE_2FA, ())
    for level in contexts.acr_values:
        assert contexts.acr_amr(level) == (None, ())


def test_without_a_table_well_known_classes_keep_their_short_names() -> None:
    assert NONE.acr_amr(MOBILE_2FA) == ("mfa", ("mfa",))
    assert NONE.acr_amr(PASSWORD_CONTEXT) == ("pwd", ("pwd",))
    assert NONE.acr_amr("urn:example:gold") == ("urn:example:gold", ())


@pytest.mark.parametrize("dev_toml_extra", ["[authn_contexts]\n"])
def test_an_idp_without_levels_reports_well_known_names(browser: Browser) -> None:
    login = start(browser)
    body = tokens_for(browser, login, browser.signed_response(login, class_ref=MOBILE_2FA))
    access = claims(body["access_token"])
    assert (access["acr"], access["amr"]) == ("mfa", ["mfa"])


@pytest.mark.parametrize("auth_time", [2**31 + 10, 2**40])
def test_a_login_after_2038_is_stored_and_refreshed(browser: Browser, auth_time: int) -> None:
    """auth_time is kept as a 64-bit integer in every table that holds it: the login's code,
    then its refresh family."""
    bridge = browser.bridge
    verifier, challenge = pkce_pair()
    now = bridge.clock.now()
    code = "c" * 43
    with bridge.db.connection() as connection:
        connection.execute(sa.insert(AuthorizationCode), {
            "code_hash": secret_hash(code), "client_id": "web2", "redirect_uri": WEB2_REDIRECT,
            "code_challenge": challenge, "scope": "openid", "nonce": "n-1", "subject": "s1",
            "idp_slug": "dev", "claims_json": '{"sub":"s1","idp":"dev","ver":2}',
            "auth_time": auth_time, "session_index": None, "session_not_on_or_after": None,
            "name_id": "alice", "created_at": now, "expires_at": now + 60})
    response = browser.exchange(code, verifier, client_id="web2", redirect_uri=WEB2_REDIRECT)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert claims(response.get_json()["access_token"])["auth_time"] == auth_time
    refreshed = browser.refresh(response.get_json()["refresh_token"], client_id="web2")
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert claims(refreshed.get_json()["access_token"])["auth_time"] == auth_time


@pytest.mark.parametrize("with_other_idp", [True])
def test_prompt_none_never_shows_the_idp_chooser(browser: Browser) -> None:
    """OIDC Core §3.1.2.1: with prompt=none nothing is shown. With two IdPs and nothing to
    choose by, the client hears login_required; named, the IdP is asked passively."""
    unnamed = {"client_id": "web2", "redirect_uri": WEB2_REDIRECT, "scope": "openid", "idp": ""}
    assert browser.authorize(**unnamed).status_code == 200  # the chooser
    response = browser.authorize(**unnamed, prompt="none")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == WEB2_REDIRECT
    query = parse_qs(location.query)
    assert query["error"] == ["login_required"]
    assert query["state"] == [response.state]  # type: ignore[attr-defined]
    named = browser.authorize(**{**unnamed, "idp": "dev"}, prompt="none")
    assert authn_request_xml(named.headers["Location"]).get("IsPassive") == "true"



def test_the_upgrade_widens_auth_time_and_keeps_the_logins(upgrade_url: str) -> None:
    logins = [  # at 0015, the revision before auth_time was widened
        row("INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, scope, subject, "
            "idp_slug, claims_json, auth_time, created_at, expires_at) VALUES ('h1', 'web2', "
            "'https://web2.example.com/cb', 'openid', 's', 'dev', '{}', 1700000000, 0, 1)"),
        row("INSERT INTO refresh_families (id, client_id, subject, idp_slug, claims_json, scope, "
            "auth_time, created_at, expires_at) VALUES ('f1', 'web2', 's', 'dev', '{}', 'openid', "
            "1700000000, 0, 1)"),
    ]
    with upgraded_from(upgrade_url, "0015", logins) as database, \
            database.engine.begin() as connection:
        for table in ("authorization_codes", "refresh_families"):
            connection.execute(sa.text(f"UPDATE {table} SET auth_time = auth_time + :more"),
                               {"more": 2**40})
            kept = connection.execute(sa.text(f"SELECT auth_time FROM {table}")).scalar_one()
            assert kept == 1700000000 + 2**40


def test_a_deprovisioned_person_is_refused_as_such_whatever_else_the_login_lacks(
        browser: Browser) -> None:
    """Whether the IdP deprovisioned the person is checked by the statement that completes the
    login (one round trip on PostgreSQL), after the client's requirements: a login that also
    misses them (a password login where MFA was asked) is still refused as the person's
    deactivation, as when that check came first, and nothing is issued."""
    first = start(browser)
    subject = claims(tokens_for(browser, first, browser.signed_response(first))["access_token"])[
        "sub"]
    with browser.bridge.db.transaction() as session:
        deprovision(session, idp_slug="dev", subject=subject, source="scim",
                    reason="deactivated", now=time.time(), actor="test")
    codes_before = browser.count(AuthorizationCode)
    for params in ({}, {"acr_values": "mfa"}):
        login = start(browser, **params)
        response = browser.post_acs(browser.signed_response(login, class_ref=PASSWORD_CONTEXT))
        assert (response.status_code, response.get_json()["code"]) == (
            403, "login_deprovisioned"), params
        assert (browser.last_audit().outcome, browser.last_audit().code) == (
            "refused", "login_deprovisioned")
        assert browser.count(AuthorizationCode) == codes_before


@pytest.mark.parametrize("params", [{}, {"prompt": "login", "max_age": "0"}])
def test_a_deprovisioned_person_dated_in_the_future_is_refused_as_deprovisioned(
        browser: Browser, params: dict[str, str]) -> None:
    """An AuthnInstant no login can have is checked last of the assertion's rules, before the
    person is looked up: the person's deactivation is still what the login is refused for (a
    403, not a redirect that tells the client access_denied), and nothing is issued. The same
    response for a person not deprovisioned is refused as authn_instant_in_future."""
    first = start(browser)
    subject = claims(tokens_for(browser, first, browser.signed_response(first))["access_token"])[
        "sub"]
    future = int(time.time()) + 365 * 86400
    with browser.bridge.db.transaction() as session:
        deprovision(session, idp_slug="dev", subject=subject, source="scim",
                    reason="deactivated", now=time.time(), actor="test")
    codes_before = browser.count(AuthorizationCode)
    login = start(browser, **params)
    response = browser.post_acs(browser.signed_response(login, authn_instant=future))
    assert (response.status_code, response.get_json()["code"]) == (403, "login_deprovisioned")
    assert (browser.last_audit().outcome, browser.last_audit().code) == (
        "refused", "login_deprovisioned")
    assert browser.count(AuthorizationCode) == codes_before
    bob = start(browser, **params)
    response = browser.post_acs(browser.signed_response(bob, "bob", authn_instant=future))
    assert response.status_code == 302, response.get_data(as_text=True)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"] and "code" not in query
    assert (browser.last_audit().outcome, browser.last_audit().code) == (
        "refused", "authn_instant_in_future")
    assert browser.count(AuthorizationCode) == codes_before
