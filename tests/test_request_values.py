"""Values an attacker (or a careless script) sends where the bridge expects a short string or a
small integer: a list, an object, a number, a NUL character, a newline at the end, a huge id. Each
is a clear 4xx with a stable code on SQLite and PostgreSQL alike, and nothing changes; before,
several reached the database and answered 500 (PostgreSQL refuses NUL in text and integers past
its column's range)."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from bridge.store.models import AdminToken, AuditEvent, AuthnRequestRecord
from tests.helpers import DEMO_REDIRECT, Browser, pkce_pair
from tests.test_admin_api import acme, api, token  # noqa: F401

ODD = [["x"], {"a": 1}, True, 7, 1e308, "", "x" * 129, "\x00", "alice\x00", "alice\n"]


def _events(bridge: Services, event: str) -> int:
    with bridge.db.transaction() as session:
        return session.query(AuditEvent).filter(AuditEvent.event == event).count()


@pytest.mark.parametrize("field", ["subject", "idp", "reason"])
@pytest.mark.parametrize("value", ODD, ids=repr)
def test_a_revocation_takes_short_strings_only(api, browser: Browser, bridge: Services,  # type: ignore[no-untyped-def]  # noqa: F811
                                               field: str, value: object) -> None:
    issued = browser.tokens()
    body = {"subject": "someone", field: value} if field == "reason" else {field: value}
    if field == "idp" and isinstance(value, str) and len(value) == 129:
        body = {"idp": "x" * 64}  # a slug is at most 63 characters

    refused = api("POST", "/admin/api/revocations", json=body)

    assert refused.status_code == 422, refused.get_data(as_text=True)
    problem = refused.get_json()
    assert problem["code"] == "config_invalid"
    assert problem["problems"] == [f"{field}: a string of 1 to "
                                   f"{ {'subject': 128, 'idp': 63, 'reason': 64}[field]} "
                                   "characters, no control characters"]
    assert _events(bridge, "revoke_all") == 0
    assert browser.refresh(issued["refresh_token"]).status_code == 200  # nothing was ended


@pytest.mark.parametrize("name", [{"a": 1}, ["x"], 5, "a\x00b", "a\nb", "x" * 129, ""], ids=repr)
def test_an_admin_token_name_is_a_short_line_of_text(api, bridge: Services, name: object) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    refused = api("POST", "/admin/api/tokens", json={"name": name})

    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert refused.get_json()["problems"] == ["name: 1 to 128 characters, no control characters"]
    with bridge.db.transaction() as session:
        assert session.query(AdminToken).count() == 1  # the test's own token


@pytest.mark.parametrize("version", ["2147483648", "99999999999999999999", "9223372036854775808"])
def test_a_version_id_past_any_stored_one_is_not_found(api, acme: DevIdp, version: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    created = api("POST", "/admin/api/idps", json={"slug": "other",
                                                   "metadata_xml": acme.metadata_xml().decode()})
    assert created.status_code == 201, created.get_data(as_text=True)
    path = f"/admin/api/idps/other/metadata/versions/{version}"
    for method, suffix in (("GET", ""), ("POST", "/apply"), ("POST", "/restore"),
                           ("POST", "/discard")):
        answer = api(method, path + suffix)
        assert answer.status_code == 404, (method, suffix, answer.get_data(as_text=True))
        assert answer.get_json()["code"] == "version_unknown"


def test_a_nul_or_a_newline_in_a_path_is_a_client_error(api, bridge: Services) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    for method, path, status, code in (
            ("GET", "/admin/api/idps/a%00b", 404, "idp_unknown"),
            ("DELETE", "/admin/api/idps/%00", 404, "idp_unknown"),
            ("GET", "/admin/api/idps/a%00b/metadata/versions", 404, "idp_unknown"),
            ("PUT", "/admin/api/idps/dev%0A/settings", 404, "idp_unknown"),
            ("DELETE", "/admin/api/tokens/%00", 400, "value_invalid"),
            ("GET", "/admin/api/test-logins/%00", 400, "value_invalid")):
        answer = api(method, path, json={})
        assert (answer.status_code, answer.get_json()["code"]) == (status, code), (method, path)


def test_a_slug_with_a_final_newline_is_no_slug(api, acme: DevIdp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    refused = api("POST", "/admin/api/idps", json={"slug": "other\n",
                                                   "metadata_xml": acme.metadata_xml().decode()})
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert api("GET", "/admin/api/idps").get_json()["idps"][0]["slug"] == "dev"
    assert len(api("GET", "/admin/api/idps").get_json()["idps"]) == 1


@pytest.mark.parametrize("parameter", ["state", "nonce"])
@pytest.mark.parametrize("value", ["a\x00b", "\x00", "line\r\nbreak"], ids=repr)
def test_a_control_character_in_state_or_nonce_goes_back_to_the_client(
        client: FlaskClient, bridge: Services, dev_idp: DevIdp, parameter: str, value: str) -> None:
    """RFC 6749 Appendix A.5: state is printable ASCII. A NUL was a 500 on PostgreSQL."""
    _, challenge = pkce_pair()
    query = {"response_type": "code", "client_id": "demo", "redirect_uri": DEMO_REDIRECT,
             "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
             "idp": "dev", parameter: value}

    answer = client.get("/authorize", query_string=query)

    assert answer.status_code == 302, answer.get_data(as_text=True)
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == DEMO_REDIRECT
    assert parse_qs(location.query)["error"] == ["invalid_request"]
    with bridge.db.transaction() as session:
        assert session.query(AuthnRequestRecord).count() == 0


@pytest.mark.parametrize("form_settings", ["{not json", "\x00", '{"display_name": "a\\u0000b"}'],
                         ids=repr)
def test_idp_settings_in_a_form_upload_that_are_not_a_json_object_of_text_are_refused(
        api, acme: DevIdp, form_settings: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The multipart form of POST /admin/api/idps: settings that were not JSON were a 500."""
    refused = api("POST", "/admin/api/idps", content_type="multipart/form-data", data={
        "slug": "other", "settings": form_settings,
        "metadata": (io.BytesIO(acme.metadata_xml()), "acme.xml")})
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert refused.get_json()["code"] == "config_invalid"
    assert api("GET", "/admin/api/idps/other").status_code == 404
