"""RFC 7591 dynamic client registration: off unless an initial access token is configured; with
it, a client registered at /register logs in at once and is a managed client like the others.
Refusals from the caller's side: no token, a wrong one, an admin token, bad redirect URIs and
metadata the bridge cannot honour; nothing is registered for any of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from bridge.admin.access import AdminAccess
from bridge.config import Settings
from bridge.services import Services, build_services
from bridge.store.models import ClientRecord
from tests.conftest import MovableClock
from tests.helpers import Browser
from tests.leaks import remember

TOKEN = "rG7kQ2xVb9Lw4ZsT1pN6mYh3Jd8FcA5uE0oWiXq2Bn"
APP = {"redirect_uris": ["https://reports.example.com/cb"], "token_endpoint_auth_method": "none",
       "grant_types": ["authorization_code", "refresh_token"], "scope": "openid email",
       "client_name": "Reports"}


@pytest.fixture
def bridge(settings: Settings) -> Iterator[Services]:
    the_bridge = build_services(dataclasses.replace(settings, registration_token=TOKEN),
                                MovableClock())
    yield the_bridge
    the_bridge.db.dispose()


def _register(client: FlaskClient, body: object, token: str | None = TOKEN):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/register", json=body, headers=headers)


def _registered(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return session.query(ClientRecord).count()


def test_a_registered_client_logs_in_at_once(client: FlaskClient, browser: Browser,
                                             bridge: Services) -> None:
    assert client.get("/.well-known/openid-configuration").get_json()[
        "registration_endpoint"] == "https://bridge.example.com/register"
    response = _register(client, APP)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["client_id"].startswith("dyn-") and "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "none" and body["scope"] == "openid email"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    redirect = APP["redirect_uris"][0]
    code, login = browser.login(client_id=body["client_id"], redirect_uri=redirect)
    tokens = browser.exchange(code, login.verifier, client_id=body["client_id"],
                              redirect_uri=redirect)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    admin_token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("t", expires_in=60,
                                                                     actor="test")[1]
    events = client.get("/admin/api/audit", headers={"Authorization": f"Bearer {admin_token}"})
    created = next(e for e in events.get_json()["events"] if e["event"] == "client_created")
    assert created["detail"]["actor"] == "registration"


def test_a_confidential_client_gets_a_secret_once(client: FlaskClient) -> None:
    response = _register(client, {**APP, "token_endpoint_auth_method": "client_secret_basic"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    remember(body["client_secret"])
    assert body["client_secret_expires_at"] == 0
    assert client.post("/introspect", data={"token": "x"},
                       auth=(body["client_id"], body["client_secret"])).status_code == 200


@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1], TOKEN + "x"])
def test_without_the_initial_access_token_nothing_is_registered(
        client: FlaskClient, bridge: Services, token: str | None) -> None:
    response = _register(client, APP, token)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert _registered(bridge) == 0


def test_an_admin_token_is_no_initial_access_token(client: FlaskClient, bridge: Services) -> None:
    admin_token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("t", expires_in=60,
                                                                     actor="test")[1]
    assert _register(client, APP, admin_token).status_code == 401
    assert _registered(bridge) == 0


@pytest.mark.parametrize(("body", "error", "says"), [
    ({**APP, "redirect_uris": ["http://reports.example.com/cb"]}, "invalid_redirect_uri",
     "must use https"),
    ({**APP, "redirect_uris": ["https://*.example.com/cb"]}, "invalid_redirect_uri", "wildcard"),
    ({**APP, "redirect_uris": ["https://a.example.com/cb#x"]}, "invalid_redirect_uri", "fragment"),
    ({k: v for k, v in APP.items() if k != "redirect_uris"}, "invalid_redirect_uri", "required"),
    ({**APP, "grant_types": ["client_credentials"]}, "invalid_client_metadata", "grant_types"),
    ({**APP, "grant_types": [["authorization_code"]]}, "invalid_client_metadata", "grant_types"),
    ({**APP, "grant_types": [{"a": 1}]}, "invalid_client_metadata", "grant_types"),
    ({**APP, "token_endpoint_auth_method": ["none"]}, "invalid_client_metadata",
     "token_endpoint_auth_method"),
    ({**APP, "token_endpoint_auth_method": {"none": 1}}, "invalid_client_metadata",
     "token_endpoint_auth_method"),
    ({**APP, "response_types": ["token"]}, "invalid_client_metadata", "response_types"),
    ({**APP, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata",
     "token_endpoint_auth_method"),
    ({**APP, "scope": ["openid"]}, "invalid_client_metadata", "scope"),
    ({**APP, "audience": 7}, "invalid_client_metadata", "audience"),
    (["not", "an", "object"], "invalid_client_metadata", "JSON object"),
])
def test_metadata_the_bridge_cannot_honour_is_refused(
        client: FlaskClient, bridge: Services, body: object, error: str, says: str) -> None:
    response = _register(client, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
    assert says in response.get_json()["error_description"]
    assert _registered(bridge) == 0


def test_registration_is_off_by_default(settings: Settings) -> None:
    from bridge.web import create_app

    app = create_app(settings, clock=MovableClock())
    try:
        client = app.test_client()
        assert "registration_endpoint" not in client.get(
            "/.well-known/openid-configuration").get_json()
        assert _register(client, APP).status_code == 404
        assert _register(client, APP, None).status_code == 404
    finally:
        app.extensions["bridge"].db.dispose()


def test_a_guessable_initial_access_token_stops_start_up() -> None:
    from bridge.config import load_settings
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="registration_token: too weak"):
        load_settings(environ={"BRIDGE_REGISTRATION_TOKEN": "register-me-please"})



# --- the audience is the client's own ---------------------------------------------------------

ADMIN_APP = {"client_id": "reports-admin", "redirect_uris": ["https://reports.example.com/admin"],
             "public": False}


def _admin_api(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("t", expires_in=600,
                                                               actor="test")[1]
    return lambda method, path, **kw: client.open(
        path, method=method, headers={"Authorization": f"Bearer {token}"}, **kw)


@pytest.mark.parametrize("audience", ["demo-api", "backend-api", "reports-admin-api",
                                      "ledger-api"])
def test_an_audience_another_client_has_is_refused(
        client: FlaskClient, bridge: Services, audience: str) -> None:
    """The file clients' audiences, a managed client's and one a client may exchange tokens for:
    a client registered under any of them would get access tokens for that application's API."""
    admin = _admin_api(client, bridge)
    created = admin("POST", "/admin/api/clients", json={
        **ADMIN_APP, "audience": "reports-admin-api", "token_exchange_audiences": ["ledger-api"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    remember(created.get_json()["client_secret"])
    response = _register(client, {**APP, "audience": audience})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert "another client has this audience" in response.get_json()["error_description"]
    assert _registered(bridge) == 1  # the admin's client only


def test_the_audience_is_the_client_id_or_one_no_client_uses(
        client: FlaskClient, bridge: Services) -> None:
    plain = _register(client, APP).get_json()
    assert plain["audience"] == plain["client_id"]
    chosen = _register(client, {**APP, "audience": "reports-api"})
    assert chosen.status_code == 201 and chosen.get_json()["audience"] == "reports-api"
    again = _register(client, {**APP, "audience": "reports-api"})  # now taken
    assert again.status_code == 400 and _registered(bridge) == 2
    assert _register(client, {**APP, "audience": plain["client_id"]}).status_code == 400


def test_a_registered_client_introspects_its_own_tokens_only(
        client: FlaskClient, bridge: Services, browser: Browser) -> None:
    """Even when an admin later gives another client its audience (admins may): the registered
    client chose that audience, so another client's tokens stay hidden from it, while an API an
    admin configured still sees the tokens meant for it."""
    registered = _register(client, {**APP, "token_endpoint_auth_method": "client_secret_basic",
                                     "redirect_uris": ["https://squat.example.com/cb"]}).get_json()
    remember(registered["client_secret"])
    admin = _admin_api(client, bridge)
    spa = {"client_id": "shared-spa", "redirect_uris": ["https://spa.example.com/cb"],
           "audience": registered["audience"]}
    assert admin("POST", "/admin/api/clients", json=spa).status_code == 201
    resource = admin("POST", "/admin/api/clients", json={
        **ADMIN_APP, "audience": registered["audience"]}).get_json()["client_secret"]
    remember(resource)
    code, login = browser.login(client_id="shared-spa", redirect_uri=spa["redirect_uris"][0])
    token = browser.exchange(code, login.verifier, client_id="shared-spa",
                             redirect_uri=spa["redirect_uris"][0]).get_json()["access_token"]

    def introspect(client_id: str, secret: str) -> object:
        return client.post("/introspect", data={"token": token},
                           auth=(client_id, secret)).get_json()["active"]

    assert introspect(registered["client_id"], registered["client_secret"]) is False
    assert introspect("reports-admin", resource) is True
    # Its own tokens it does see.
    code, login = browser.login(client_id=registered["client_id"],
                                redirect_uri="https://squat.example.com/cb")
    own = browser.exchange(code, login.verifier, client_id=registered["client_id"],
                           redirect_uri="https://squat.example.com/cb",
                           client_secret=registered["client_secret"]).get_json()["access_token"]
    assert client.post("/introspect", data={"token": own}, auth=(
        registered["client_id"], registered["client_secret"])).get_json()["active"] is True


def test_metadata_with_a_string_that_is_not_text_registers_nothing(client: FlaskClient,
                                                                   bridge: Services) -> None:
    """A client_name holding a lone surrogate ("\\ud800" in JSON) would break every page that
    shows the client: refused as invalid client metadata (RFC 7591 §3.2.2)."""
    before = _registered(bridge)
    response = _register(client, {**APP, "client_name": "App \ud800"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert "body.client_name: not valid Unicode text" in response.get_json()["error_description"]
    assert _registered(bridge) == before


def test_the_answer_names_the_grants_the_client_may_use(client: FlaskClient,
                                                       browser: Browser) -> None:
    # Asked for the code alone (RFC 7591's default), the client still gets refresh tokens, as
    # every client does: the registered metadata must say so.
    body = _register(client, {k: v for k, v in APP.items() if k != "grant_types"}).get_json()
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    redirect = APP["redirect_uris"][0]
    code, login = browser.login(client_id=body["client_id"], redirect_uri=redirect)
    tokens = browser.exchange(code, login.verifier, client_id=body["client_id"],
                              redirect_uri=redirect).get_json()
    assert tokens["refresh_token"]
