"""Odd input to every way of registering or changing an OAuth client (admin API, admin pages,
/register): JSON nested deeper than the parser can follow, numbers that are not ASCII digits,
URLs that do not parse or name no usable port. Each is a clear 400/422 and changes nothing; none
is a 500."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge.admin.access import AdminAccess
from bridge.config import Settings
from bridge.services import Services, build_services
from bridge.store.models import ClientRecord
from tests.conftest import MovableClock
from tests.leaks import remember

TOKEN = "rG7kQ2xVb9Lw4ZsT1pN6mYh3Jd8FcA5uE0oWiXq2Bn"
SPA = {"client_id": "reports-spa", "redirect_uris": ["https://reports.example.com/callback"],
       "audience": "reports-api"}
API = {"client_id": "reports-api", "redirect_uris": ["https://reports.example.com/api/cb"],
       "audience": "reports-api", "public": False}
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def bridge(settings: Settings) -> Iterator[Services]:
    the_bridge = build_services(dataclasses.replace(settings, registration_token=TOKEN),
                                MovableClock())
    yield the_bridge
    the_bridge.db.dispose()


@pytest.fixture
def api(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("tests", expires_in=3600,
                                                               actor="test")[1]

    def call(method: str, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"},
                           **kwargs)
    return call


@pytest.fixture
def csrf(bridge: Services, client: FlaskClient) -> str:
    """An admin's session on ``client``; its CSRF token."""
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    session_id = access.claim_ticket(access.issue_ticket(subject="s", name="Alice", idp_slug="dev"))
    assert session_id is not None
    client.set_cookie("__Host-bridge-admin", session_id)
    return access.authenticate_session(session_id).csrf_token  # type: ignore[union-attr]


def _stored(bridge: Services) -> dict[str, str]:
    with bridge.db.transaction() as session:
        return {r.client_id: r.settings_json for r in session.query(ClientRecord)}


def _created(api, table: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    response = api("POST", "/admin/api/clients", json=table)
    assert response.status_code == 201, response.get_data(as_text=True)
    remember(response.get_json()["client_secret"])


FORM = {"client_id": "forms-app", "kind": "public", "redirect_uris": "https://forms.example/cb",
        "audience": "forms-api"}


@pytest.mark.parametrize("where", ["admin_api", "admin_api_rotation", "form_other_settings",
                                   "form_settings", "register"])
def test_json_nested_too_deeply_is_refused(  # type: ignore[no-untyped-def]
        where: str, api, bridge: Services, client: FlaskClient, csrf: str) -> None:
    _created(api, API)
    before = _stored(bridge)
    if where == "admin_api":
        response = api("POST", "/admin/api/clients", data=DEEP, content_type="application/json")
        assert response.status_code == 422 and "JSON object" in response.get_json()["title"]
    elif where == "admin_api_rotation":
        response = api("POST", "/admin/api/clients/reports-api/secret", data=DEEP,
                       content_type="application/json")
        assert response.status_code == 422
    elif where == "register":
        response = client.post("/register", data=DEEP, content_type="application/json",
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_client_metadata"
    elif where == "form_other_settings":
        response = client.post("/admin/clients/new",
                               data={**FORM, "csrf_token": csrf, "other_settings": DEEP})
        assert response.status_code == 422 and b"nested too deeply" in response.data
    else:
        response = client.post("/admin/clients/reports-api/settings",
                               data={"csrf_token": csrf, "settings_json": DEEP})
        assert response.status_code == 422 and b"nested too deeply" in response.data
    assert _stored(bridge) == before


NOT_TEXT = '{"client_name": "Reports \\ud800"}'  # JSON text: the escape of a lone surrogate


@pytest.mark.parametrize("where", ["admin_api", "admin_api_update", "admin_api_rotation",
                                   "form_other_settings", "form_settings", "register"])
def test_a_string_that_is_not_text_is_refused(  # type: ignore[no-untyped-def]
        where: str, api, bridge: Services, client: FlaskClient, csrf: str) -> None:
    """A lone surrogate (JSON can escape one) is no character: stored, it would break every page
    and answer that shows the client. Refused where it comes in, naming where it is."""
    _created(api, API)
    before = _stored(bridge)
    if where == "admin_api":
        body = NOT_TEXT[:-1] + ', "client_id": "x-app", "redirect_uris": ["https://x.example/cb"]}'
        response = api("POST", "/admin/api/clients", data=body, content_type="application/json")
        assert response.status_code == 422
        assert "body.client_name: not valid Unicode text" in response.get_json()["title"]
    elif where == "admin_api_update":
        response = api("PUT", "/admin/api/clients/reports-api", data=NOT_TEXT,
                       content_type="application/json")
        assert response.status_code == 422
    elif where == "admin_api_rotation":
        response = api("POST", "/admin/api/clients/reports-api/secret",
                       data='{"overlap_seconds": 60, "\\udc80": 1}',
                       content_type="application/json")
        assert response.status_code == 422
    elif where == "register":
        response = client.post("/register", data=NOT_TEXT, content_type="application/json",
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_client_metadata"
    elif where == "form_other_settings":
        response = client.post("/admin/clients/new",
                               data={**FORM, "csrf_token": csrf, "other_settings": NOT_TEXT})
        assert response.status_code == 422 and b"not valid Unicode text" in response.data
    else:
        response = client.post("/admin/clients/reports-api/settings",
                               data={"csrf_token": csrf, "settings_json": NOT_TEXT})
        assert response.status_code == 422 and b"not valid Unicode text" in response.data
    assert _stored(bridge) == before
    assert client.get("/admin/clients").status_code == 200


@pytest.mark.parametrize("value", ["abc", "²", "1.0", " ", "1e3", "9" * 5000])
def test_a_claims_version_that_is_no_number_is_refused_on_the_form(
        value: str, bridge: Services, client: FlaskClient, csrf: str) -> None:
    response = client.post("/admin/clients/new",
                           data={**FORM, "csrf_token": csrf, "claims_version": value})
    assert response.status_code == 422 and b"claims version" in response.data
    assert _stored(bridge) == {}


@pytest.mark.parametrize("value", ["²", "١٢", "-1", "1.5", "9" * 5000])
def test_an_overlap_that_is_no_whole_number_of_seconds_is_refused(  # type: ignore[no-untyped-def]
        value: str, api, bridge: Services, client: FlaskClient, csrf: str) -> None:
    _created(api, API)
    before = api("GET", "/admin/api/clients/reports-api").get_json()["secrets"]
    response = client.post("/admin/clients/reports-api/secret",
                           data={"csrf_token": csrf, "overlap_seconds": value})
    assert response.status_code == 422
    assert b"overlap" in response.data and b"client-secret" not in response.data
    assert api("GET", "/admin/api/clients/reports-api").get_json()["secrets"] == before


@pytest.mark.parametrize(("table", "key"), [
    ({"redirect_uris": ["https://[::1"]}, "redirect_uris"),
    ({"redirect_uris": ["https://[::1/cb"]}, "redirect_uris"),
    ({"redirect_uris": ["http://[::1]:99999/cb"]}, "redirect_uris"),
    ({"redirect_uris": ["https://reports.example.com:0/cb"]}, "redirect_uris"),
    ({"redirect_uris": ["https://reports.example.com:x/cb"]}, "redirect_uris"),
    ({"login_start_uri": "https://[x"}, "login_start_uri"),
    ({"allowed_origins": ["https://reports.example.com:99999"]}, "allowed_origins"),
    ({"allowed_origins": ["https://reports.example.com:0"]}, "allowed_origins"),
    ({"allowed_origins": ["https://[::1"]}, "allowed_origins"),
])
def test_urls_that_do_not_parse_or_name_no_port_are_refused(  # type: ignore[no-untyped-def]
        table: dict[str, Any], key: str, api, bridge: Services) -> None:
    response = api("POST", "/admin/api/clients", json={**SPA, **table})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert key in " | ".join(response.get_json()["problems"])
    assert _stored(bridge) == {}


@pytest.mark.parametrize("uri", ["https://[::1/cb", "https://reports.example.com:65536/cb"])
def test_register_refuses_urls_that_do_not_parse(
        uri: str, client: FlaskClient, bridge: Services) -> None:
    response = client.post("/register", headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"redirect_uris": [uri]})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_redirect_uri"
    assert _stored(bridge) == {}


# --- values no application needs ------------------------------------------------------------------

@pytest.mark.parametrize("client_id", ["DEMO", "Demo", "demo.", "demo-", "backend_", "BACKEND",
                                       "Reports-API", "reports-api."])
def test_a_client_id_too_like_another_is_refused(  # type: ignore[no-untyped-def]
        client_id: str, api, bridge: Services) -> None:
    _created(api, API)
    before = _stored(bridge)
    response = api("POST", "/admin/api/clients", json={**SPA, "client_id": client_id})
    assert response.status_code == 409 and response.get_json()["code"] == "client_id_in_use"
    assert "too like" in response.get_json()["title"]
    assert _stored(bridge) == before


@pytest.mark.parametrize(("table", "key"), [
    ({"claims_version": True}, "claims_version"),
    ({"claims_version": 1.0}, "claims_version"),
    ({"claims_version": 2.0}, "claims_version"),
    ({"redirect_uris": ["https://reports.example.com/" + "a" * 2100]}, "redirect_uris"),
    ({"login_start_uri": "https://reports.example.com/" + "a" * 2100}, "login_start_uri"),
])
def test_values_no_client_needs_are_refused(  # type: ignore[no-untyped-def]
        table: dict[str, Any], key: str, api, bridge: Services) -> None:
    response = api("POST", "/admin/api/clients", json={**SPA, **table})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert key in " | ".join(response.get_json()["problems"])
    assert _stored(bridge) == {}


@pytest.mark.parametrize(("metadata", "error"), [
    ({"redirect_uris": [f"https://reports.example.com/{n}" for n in range(51)]},
     "invalid_redirect_uri"),
    ({"redirect_uris": ["https://reports.example.com/cb"],
      "scope": " ".join(f"s{n}" for n in range(51))}, "invalid_client_metadata"),
])
def test_register_refuses_more_uris_or_scopes_than_an_application_needs(
        metadata: dict[str, Any], error: str, client: FlaskClient, bridge: Services) -> None:
    response = client.post("/register", headers={"Authorization": f"Bearer {TOKEN}"},
                           json=metadata)
    assert response.status_code == 400 and response.get_json()["error"] == error
    assert "at most 50" in response.get_json()["error_description"]
    assert _stored(bridge) == {}


@pytest.mark.parametrize("audience", ["a" * 2049, "reports\napi", "reports\x00api", "api\u2028x"])
def test_an_audience_too_long_or_with_control_characters_is_refused(  # type: ignore[no-untyped-def]
        api, audience: str) -> None:
    # It goes into every token of the client; through registration anyone with its token sets it.
    response = api("POST", "/admin/api/clients", json={**SPA, "audience": audience})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "audience" in response.get_data(as_text=True)
    exchange = api("POST", "/admin/api/clients",
                   json={**API, "client_id": "exchanger", "token_exchange_audiences": [audience]})
    assert exchange.status_code == 422, exchange.get_data(as_text=True)
    assert api("POST", "/admin/api/clients", json={**SPA, "audience": "a" * 2048}).status_code == 201
