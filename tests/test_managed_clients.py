"""OAuth clients managed through the admin API: registered without a restart and in force on
another node at once, validated by the settings file's rules, secrets made by the bridge, shown
once, stored as hashes and rotated with an overlap, every change audited without a secret; the
settings file's clients stay as declared. Each rule is also broken here and seen refused."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge.admin.access import AdminAccess
from bridge.config import ClientConfig, Settings
from bridge.errors import Conflict
from bridge.services import Services
from bridge.store.models import ClientSecret
from bridge.web import create_app
from tests.conftest import CONFIDENTIAL_SECRET, MovableClock
from tests.helpers import Browser
from tests.leaks import remember

SPA = {"client_id": "reports-spa", "redirect_uris": ["https://reports.example.com/callback"],
       "audience": "reports-api", "claims_version": 2, "scopes": ["openid", "email"]}
API = {"client_id": "reports-api", "redirect_uris": ["https://reports.example.com/api/cb"],
       "audience": "reports-api", "public": False}


@pytest.fixture
def api(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("tests", expires_in=3600,
                                                               actor="test")[1]

    def call(method: str, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"},
                           **kwargs)
    return call


def _register(api, table: dict[str, Any]) -> str | None:  # type: ignore[no-untyped-def]
    response = api("POST", "/admin/api/clients", json=table)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    secret = response.get_json()["client_secret"]
    remember(secret)
    return secret  # type: ignore[no-any-return]


def _introspect(client: FlaskClient, secret: str, client_id: str = "reports-api") -> int:
    return client.post("/introspect", data={"token": "not-a-token"},
                       auth=(client_id, secret)).status_code


def _problems(response: Any) -> str:
    body = response.get_json()
    return " | ".join(body.get("problems") or [body["title"]])


# --- registering and logging in -----------------------------------------------------------------

def test_a_registered_public_client_logs_in_at_once(api, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    assert _register(api, SPA) is None  # public: no secret
    redirect = SPA["redirect_uris"][0]
    code, login = browser.login(client_id="reports-spa", redirect_uri=redirect)
    response = browser.exchange(code, login.verifier, client_id="reports-spa",
                                redirect_uri=redirect)
    assert response.status_code == 200, response.get_data(as_text=True)
    tokens = response.get_json()
    assert tokens["refresh_token"]
    listed = {c["client_id"]: c["source"] for c in api("GET", "/admin/api/clients").get_json()["clients"]}
    assert listed == {"demo": "file", "backend": "file", "reports-spa": "api"}


def test_a_client_registered_on_one_node_is_in_force_on_another(  # type: ignore[no-untyped-def]
        api, settings: Settings, browser: Browser) -> None:
    clock = MovableClock()
    other_app = create_app(settings, clock=clock)  # its own services, the same database
    other = other_app.test_client()
    try:
        assert other.get("/authorize", query_string={"client_id": "reports-spa"}).status_code == 400
        secret = _register(api, API)
        assert secret
        # Within the registry's short recheck after a miss, not its full interval.
        clock.advance(other_app.extensions["bridge"].clients.miss_recheck_seconds)
        assert _introspect(other, secret) == 200
        rotated = api("POST", "/admin/api/clients/reports-api/secret", json={}).get_json()
        remember(rotated["client_secret"])
        clock.advance(0.3)
        assert _introspect(other, rotated["client_secret"]) == 200  # the new one at once
        assert _introspect(other, secret) == 200  # and the old one, within the overlap
        assert api("DELETE", "/admin/api/clients/reports-api").status_code == 204
        clock.advance(other_app.extensions["bridge"].clients.recheck_seconds)
        assert _introspect(other, rotated["client_secret"]) == 401
    finally:
        other_app.extensions["bridge"].db.dispose()


# --- secrets ------------------------------------------------------------------------------------

def test_secrets_are_made_here_shown_once_and_stored_as_hashes(  # type: ignore[no-untyped-def]
        api, client: FlaskClient, bridge: Services) -> None:
    secret = _register(api, API)
    assert secret and len(secret) >= 43  # 256 random bits, base64url
    assert _introspect(client, secret) == 200
    detail = api("GET", "/admin/api/clients/reports-api").get_data(as_text=True)
    audit = api("GET", "/admin/api/audit").get_data(as_text=True)
    with bridge.db.transaction() as session:
        stored = [row.secret_hash for row in session.query(ClientSecret)]
    assert len(stored) == 1 and secret not in stored
    for text in (detail, audit):
        assert secret not in text and stored[0] not in text
    assert json.loads(detail)["secrets"][0]["state"] == "current"


def test_the_old_secret_is_refused_after_the_overlap(  # type: ignore[no-untyped-def]
        api, client: FlaskClient, bridge: Services) -> None:
    old = _register(api, API)
    assert old
    response = api("POST", "/admin/api/clients/reports-api/secret", json={"overlap_seconds": 600})
    assert response.status_code == 200
    new = response.get_json()["client_secret"]
    remember(new)
    assert new != old
    assert _introspect(client, old) == 200 and _introspect(client, new) == 200
    assert [s["state"] for s in response.get_json()["client"]["secrets"]] == ["overlap", "current"]
    bridge.clock.advance(601)  # type: ignore[attr-defined]
    refused = client.post("/introspect", data={"token": "x"}, auth=("reports-api", old))
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"
    assert _introspect(client, new) == 200
    rotated = next(e for e in api("GET", "/admin/api/audit").get_json()["events"]
                   if e["event"] == "client_secret_rotated")
    assert rotated["client"] == "reports-api" and rotated["detail"]["overlap_seconds"] == 600


def test_a_rotation_with_no_overlap_ends_the_old_secret_at_once(  # type: ignore[no-untyped-def]
        api, client: FlaskClient) -> None:
    old = _register(api, API)
    assert old
    new = api("POST", "/admin/api/clients/reports-api/secret",
              json={"overlap_seconds": 0}).get_json()["client_secret"]
    remember(new)
    assert _introspect(client, old) == 401 and _introspect(client, new) == 200
    for overlap in (-1, 30 * 86400 + 1, "1h", True):
        response = api("POST", "/admin/api/clients/reports-api/secret",
                       json={"overlap_seconds": overlap})
        assert response.status_code == 422, overlap
    assert _introspect(client, new) == 200  # a refused rotation changed nothing


def test_public_clients_have_no_secret_and_stay_public(api) -> None:  # type: ignore[no-untyped-def]
    _register(api, SPA)
    response = api("POST", "/admin/api/clients/reports-spa/secret", json={})
    assert response.status_code == 422 and "public client has no secret" in _problems(response)
    response = api("PUT", "/admin/api/clients/reports-spa", json={**SPA, "public": False})
    assert response.status_code == 422 and "between public and confidential" in _problems(response)


# --- what is refused ----------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "says"), [
    ("http://reports.example.com/callback", "must use https"),
    ("https://reports.example.com/callback#top", "without fragment"),
    ("https://reports.example.com/callback#", "without fragment"),
    ("https://*.example.com/callback", "wildcard"),
    ("https://reports.example.com/*", "wildcard"),
    ("/callback", "absolute URL"),
    ("https://user:pw@reports.example.com/cb", "user name or password"),
    ("https://reports.example.com/call back", "space"),
])
def test_invalid_redirect_uris_are_refused_with_clear_errors(  # type: ignore[no-untyped-def]
        api, uri: str, says: str) -> None:
    response = api("POST", "/admin/api/clients", json={**SPA, "redirect_uris": [uri]})
    assert response.status_code == 422
    assert response.get_json()["code"] == "config_invalid"
    assert says in _problems(response) and "redirect_uris" in _problems(response)
    assert [c["client_id"] for c in api("GET", "/admin/api/clients").get_json()["clients"]] == [
        "backend", "demo"]


def test_loopback_may_use_http(api) -> None:  # type: ignore[no-untyped-def]
    _register(api, {**SPA, "redirect_uris": ["http://127.0.0.1:9000/cb", "http://[::1]:9000/cb"]})


def test_every_setting_is_checked_by_the_files_rules(api) -> None:  # type: ignore[no-untyped-def]
    response = api("POST", "/admin/api/clients", json={
        **SPA, "claims_version": 4, "refresh_token_delivery": "header",
        "allowed_origins": ["*"], "refresh_token_ttl_seconds": 10, "scopes": "openid",
        "client_secret": "mine", "token_exchange_audiences": ["x"]})
    assert response.status_code == 422
    text = _problems(response)
    for key in ("claims_version", "refresh_token_delivery", "allowed_origins",
                "refresh_token_ttl_seconds", "scopes", "client_secret: unknown client setting",
                "token_exchange_audiences"):
        assert key in text, key


def test_a_signing_algorithm_without_keys_here_is_refused(api) -> None:  # type: ignore[no-untyped-def]
    response = api("POST", "/admin/api/clients", json={**SPA, "token_signing_alg": "RS256"})
    assert response.status_code == 422 and "signs with ES256 only" in _problems(response)


def test_a_managed_client_cannot_take_or_edit_a_file_clients_id(  # type: ignore[no-untyped-def]
        api, client: FlaskClient) -> None:
    taken = api("POST", "/admin/api/clients", json={**API, "client_id": "backend"})
    assert taken.status_code == 409 and taken.get_json()["code"] == "client_id_in_use"
    for method, path, body in (("PUT", "/admin/api/clients/backend", API),
                               ("POST", "/admin/api/clients/backend/secret", {}),
                               ("DELETE", "/admin/api/clients/backend", None)):
        response = api(method, path, json=body)
        assert response.status_code == 409, (method, path)
        assert response.get_json()["code"] == "client_is_file"
    assert _introspect(client, CONFIDENTIAL_SECRET, "backend") == 200  # still as declared
    _register(api, SPA)
    again = api("POST", "/admin/api/clients", json=SPA)
    assert again.status_code == 409 and again.get_json()["code"] == "client_id_in_use"


def test_non_admins_change_nothing(client: FlaskClient, browser: Browser) -> None:
    user_token = browser.tokens()["access_token"]
    for headers in ({}, {"Authorization": f"Bearer {user_token}"}):
        response = client.post("/admin/api/clients", json=SPA,
                               headers={**headers, "Accept": "application/json"})
        assert response.status_code == 401
        assert response.get_json()["code"] == "admin_unauthorized"
    assert client.get("/authorize", query_string={"client_id": "reports-spa"}).status_code == 400


def test_unknown_and_odd_client_ids_are_not_found(api) -> None:  # type: ignore[no-untyped-def]
    for client_id in ("nobody", "x" * 300, "a%00b"):
        response = api("GET", f"/admin/api/clients/{client_id}")
        assert response.status_code in (400, 404), client_id
    assert api("PUT", "/admin/api/clients/nobody", json=SPA).status_code == 404
    assert api("POST", "/admin/api/clients", json=["not", "a", "table"]).status_code == 422


# --- changes, audit, logins ---------------------------------------------------------------------

def test_a_change_is_audited_with_before_and_after_and_takes_effect(  # type: ignore[no-untyped-def]
        api, client: FlaskClient) -> None:
    _register(api, SPA)
    origin = "https://reports.example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    assert client.options("/token", headers=preflight).headers.get(
        "Access-Control-Allow-Origin") == origin
    changed = {**SPA, "allowed_origins": ["https://other.example.com"]}
    response = api("PUT", "/admin/api/clients/reports-spa", json=changed)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Access-Control-Allow-Origin" not in client.options("/token", headers=preflight).headers
    event = api("GET", "/admin/api/audit").get_json()["events"][0]
    assert event["event"] == "client_updated" and event["client"] == "reports-spa"
    assert event["detail"]["before"] == SPA
    assert event["detail"]["after"]["allowed_origins"] == ["https://other.example.com"]
    assert event["detail"]["actor"] == "token:tests"


def test_a_refused_change_keeps_what_was_in_force(api, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    _register(api, SPA)
    response = api("PUT", "/admin/api/clients/reports-spa",
                   json={**SPA, "redirect_uris": ["http://evil.example.com/cb"]})
    assert response.status_code == 422
    assert browser.authorize(client_id="reports-spa",
                             redirect_uri=SPA["redirect_uris"][0]).status_code == 302
    assert browser.authorize(client_id="reports-spa",
                             redirect_uri="http://evil.example.com/cb").status_code == 400


def test_deleting_a_client_ends_its_logins(api, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    _register(api, SPA)
    redirect = SPA["redirect_uris"][0]
    code, login = browser.login(client_id="reports-spa", redirect_uri=redirect)
    tokens = browser.exchange(code, login.verifier, client_id="reports-spa",
                              redirect_uri=redirect).get_json()
    assert api("DELETE", "/admin/api/clients/reports-spa").status_code == 204
    event = api("GET", "/admin/api/audit").get_json()["events"][0]
    assert event["event"] == "client_deleted" and event["detail"]["logins_ended"] == 1
    _register(api, SPA)  # the same ID again inherits nothing
    refused = browser.refresh(tokens["refresh_token"], client_id="reports-spa")
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_grant"


# --- every endpoint uses the managed clients ------------------------------------------------------

GATEWAY = {"client_id": "gateway", "redirect_uris": ["https://gw.example.com/cb"],
           "audience": "gateway-api", "public": False, "claims_version": 2,
           "token_exchange_audiences": ["orders-api"]}


def test_a_managed_confidential_client_uses_every_endpoint(  # type: ignore[no-untyped-def]
        api, browser: Browser, client: FlaskClient) -> None:
    secret = _register(api, GATEWAY)
    assert secret
    auth = ("gateway", secret)
    redirect = GATEWAY["redirect_uris"][0]
    code, login = browser.login(client_id="gateway", redirect_uri=redirect)
    without = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": redirect, "client_id": "gateway",
                                          "code_verifier": login.verifier})
    assert without.status_code == 401  # a confidential client must authenticate
    code, login = browser.login(client_id="gateway", redirect_uri=redirect)
    tokens = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": redirect,
                                         "code_verifier": login.verifier}, auth=auth)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    access, refresh = tokens.get_json()["access_token"], tokens.get_json()["refresh_token"]
    remember(access, refresh)
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert userinfo.status_code == 200 and userinfo.get_json()["sub"]
    exchanged = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": access,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "orders-api"}, auth=auth)
    assert exchanged.status_code == 200, exchanged.get_data(as_text=True)
    assert client.post("/introspect", data={"token": access},
                       auth=auth).get_json()["active"] is True
    rotated = client.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": refresh}, auth=auth)
    assert rotated.status_code == 200
    successor = rotated.get_json()["refresh_token"]
    remember(successor)
    assert client.post("/revoke", data={"token": successor}, auth=auth).status_code == 200
    assert client.post("/introspect", data={"token": access},
                       auth=auth).get_json()["active"] is False
    assert client.post("/token", data={"grant_type": "refresh_token", "refresh_token": successor},
                       auth=auth).get_json()["error"] == "invalid_grant"
    assert "openid" in client.get("/.well-known/openid-configuration").get_json()[
        "scopes_supported"]


def test_two_registrations_of_one_id_at_once_leave_one(  # type: ignore[no-untyped-def]
        api, bridge: Services, settings: Settings, client: FlaskClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each node checked that the ID was free before either wrote: the primary key refuses the
    second, with the same answer as the check."""
    other_app = create_app(settings, clock=MovableClock())
    other = other_app.extensions["admin"].clients
    try:
        # This node's check ran before the other node's write.
        monkeypatch.setattr(other, "_free", lambda client_id: None)
        first = _register(api, API)
        with pytest.raises(Conflict) as caught:
            other.create_client(dict(API), "token:other")
        assert caught.value.code == "client_id_in_use"
        with bridge.db.transaction() as session:
            assert session.query(ClientSecret).count() == 1  # the first one's, intact
        assert first and _introspect(client, first) == 200
    finally:
        other_app.extensions["bridge"].db.dispose()


def test_a_rotation_fails_no_request_on_another_node(  # type: ignore[no-untyped-def]
        api, settings: Settings) -> None:
    """An application instance that moves to each new secret the moment it is made, while
    calling another node without pause: not one request is refused."""
    other_app = create_app(settings)
    other = other_app.test_client()
    in_use = {"secret": _register(api, API)}
    statuses: list[int] = []
    stop = threading.Event()

    def call_the_other_node() -> None:
        while not stop.is_set():
            statuses.append(_introspect(other, str(in_use["secret"])))

    worker = threading.Thread(target=call_the_other_node)
    worker.start()
    try:
        for _ in range(5):
            time.sleep(0.1)
            rotated = api("POST", "/admin/api/clients/reports-api/secret", json={})
            assert rotated.status_code == 200
            in_use["secret"] = rotated.get_json()["client_secret"]
            remember(in_use["secret"])
        time.sleep(0.1)
    finally:
        stop.set()
        worker.join()
        other_app.extensions["bridge"].db.dispose()
    assert len(statuses) > 10 and set(statuses) == {200}


def test_a_file_client_declared_after_a_registration_wins_and_says_so(  # type: ignore[no-untyped-def]
        api, settings: Settings, client: FlaskClient) -> None:
    """A node whose settings file declares an ID that is managed too (files that differ between
    nodes, or edited after the registration) serves its file client, and the listing says so."""
    secret = _register(api, API)
    assert secret
    declared = dataclasses.replace(settings, clients=(*settings.clients, ClientConfig(
        client_id="reports-api", redirect_uris=("https://file.example.com/cb",),
        audience="file-api", public=True)))
    other_app = create_app(declared, clock=MovableClock())
    other = other_app.test_client()
    try:
        assert _introspect(other, secret) == 401  # the file's public client has no secret
        assert other_app.extensions["bridge"].clients["reports-api"].audience == "file-api"
        listed = other_app.extensions["admin"].clients.list_clients()
        entry = next(c for c in listed if c["client_id"] == "reports-api")
        assert entry["source"] == "file" and entry["shadows_managed"] is True
        assert _introspect(client, secret) == 200  # this node's file does not declare it
    finally:
        other_app.extensions["bridge"].db.dispose()


# --- the pages, from a forged form's side -----------------------------------------------------------

def test_client_pages_change_nothing_without_the_csrf_token(  # type: ignore[no-untyped-def]
        api, bridge: Services, client: FlaskClient) -> None:
    secret = _register(api, API)
    assert secret
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    session_id = access.claim_ticket(access.issue_ticket(subject="s", name="Alice", idp_slug="dev"))
    assert session_id is not None
    client.set_cookie("__Host-bridge-admin", session_id)
    form = {"client_id": "forged", "kind": "public", "redirect_uris": "https://evil.example/cb",
            "audience": "x"}
    for path, data in (("/admin/clients/new", form),
                       ("/admin/clients/reports-api/secret", {"overlap_seconds": "0"}),
                       ("/admin/clients/reports-api/settings", {"settings_json": "{}"}),
                       ("/admin/clients/reports-api/delete", {})):
        refused = client.post(path, data=data)
        assert refused.status_code == 403, path
        assert b"admin_csrf_invalid" in refused.data
    assert _introspect(client, secret) == 200  # not rotated, not deleted
    assert client.get("/authorize", query_string={"client_id": "forged"}).status_code == 400
    csrf = access.authenticate_session(session_id).csrf_token  # type: ignore[union-attr]
    page = client.post("/admin/clients/reports-api/secret",
                       data={"overlap_seconds": "0", "csrf_token": csrf})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    shown = page.get_data(as_text=True).split('<pre id="client-secret">')[1].split("</pre>")[0]
    remember(shown)
    assert _introspect(client, secret) == 401  # the admin's own form did rotate it
    assert _introspect(client, shown) == 200


# --- every change reaches every node, whatever the clocks -------------------------------------

def test_a_rotation_reaches_another_node_when_a_node_clock_ran_ahead(  # type: ignore[no-untyped-def]
        api, bridge: Services, settings: Settings) -> None:
    """A change made by a node whose clock was ten minutes ahead leaves a client's ``updated_at``
    in the future; a later change on a node with the right time is seen by every node all the
    same, within the recheck."""
    old = _register(api, API)
    assert old
    assert api("POST", "/admin/api/clients", json={**SPA, "audience": "spa-api"}).status_code == 201
    bridge.clock.advance(600)  # type: ignore[attr-defined]
    assert api("PUT", "/admin/api/clients/reports-spa",
               json={**SPA, "audience": "spa-api", "claims_version": 1}).status_code == 200
    bridge.clock.advance(-600)  # type: ignore[attr-defined]
    clock = MovableClock()
    other_app = create_app(settings, clock=clock)
    other = other_app.test_client()
    try:
        assert _introspect(other, old) == 200  # the other node has loaded the clients
        rotated = api("POST", "/admin/api/clients/reports-api/secret",
                      json={"overlap_seconds": 0}).get_json()["client_secret"]
        remember(rotated)
        clock.advance(other_app.extensions["bridge"].clients.recheck_seconds)
        assert _introspect(other, old) == 401
        assert _introspect(other, rotated) == 200
        # A change of settings only, no secret involved, is seen there too.
        assert other_app.extensions["bridge"].clients["reports-spa"].claims_version == 1
        assert api("PUT", "/admin/api/clients/reports-spa",
                   json={**SPA, "audience": "spa-api"}).status_code == 200
        clock.advance(other_app.extensions["bridge"].clients.recheck_seconds)
        assert other_app.extensions["bridge"].clients["reports-spa"].claims_version == 2
    finally:
        other_app.extensions["bridge"].db.dispose()
