"""A scripted browser and client: drives /authorize -> IdP -> ACS -> /token through the app."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from bridge.dev.saml_idp import USERS, DevIdp, PendingRequest
from bridge.services import Services
from bridge.store.models import (
    AuditEvent,
    AuthorizationCode,
    ConsumedAssertion,
    RefreshFamily,
    RefreshToken,
)
from tests.leaks import remember

DEMO_REDIRECT = "http://127.0.0.1:8002/callback"


def _remember_tokens(response: TestResponse) -> None:
    body = response.get_json(silent=True) or {}
    remember(body.get("access_token"), body.get("refresh_token"), body.get("id_token"))
    for header in response.headers.getlist("Set-Cookie"):
        remember(header.split(";", 1)[0].partition("=")[2])


def live_api_idp(api: Callable[..., TestResponse], idp: DevIdp, slug: str) -> None:
    """``idp`` added through the admin API under ``slug`` (``api`` sends admin requests) and
    offered to users at once: a draft, its metadata, live without a test login."""
    created = api("POST", "/admin/api/idp-drafts",
                  json={"slug": slug, "settings": {"display_name": "Contoso"}})
    assert created.status_code == 201, created.get_data(as_text=True)
    added = api("POST", f"/admin/api/idps/{slug}/metadata",
                json={"metadata_xml": idp.metadata_xml().decode()})
    assert added.status_code == 200, added.get_data(as_text=True)
    live = api("POST", f"/admin/api/idps/{slug}/go-live", json={"without_test": True})
    assert live.status_code == 200, live.get_data(as_text=True)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


@dataclass
class Login:
    """One login in progress: what the client sent and what the IdP received."""

    verifier: str
    state: str
    pending: PendingRequest
    redirect_uri: str = DEMO_REDIRECT


class Browser:
    def __init__(self, client: FlaskClient, idp: DevIdp, bridge: Services) -> None:
        self.client = client
        self.idp = idp
        self.bridge = bridge

    # --- steps ---------------------------------------------------------------------------------

    def authorize(self, **overrides: str) -> TestResponse:
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": "demo",
            "redirect_uri": DEMO_REDIRECT,
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "openid email",
            "idp": "dev",
        }
        params.update(overrides)
        response = self.client.get("/authorize", query_string=params)
        response.verifier = verifier  # type: ignore[attr-defined]
        response.state = params["state"]  # type: ignore[attr-defined]
        response.redirect_uri = params["redirect_uri"]  # type: ignore[attr-defined]
        return response

    def start(self, **overrides: str) -> Login:
        response = self.authorize(**overrides)
        assert response.status_code == 302, response.get_data(as_text=True)
        location = urlsplit(response.headers["Location"])
        saml_request = parse_qs(location.query)["SAMLRequest"][0]
        pending = self.idp.parse_request(saml_request, None)
        return Login(response.verifier, response.state, pending,  # type: ignore[attr-defined]
                     response.redirect_uri)  # type: ignore[attr-defined]

    def signed_response(self, login: Login, user: str = "alice", **kwargs: Any) -> str:
        return self.idp.response_for(login.pending, USERS[user], **kwargs)

    def post_acs(self, saml_response: str, slug: str = "dev", *, json: bool = True,
                 **form: str) -> TestResponse:
        remember(saml_response, self._login_cookie())
        headers = {"Accept": "application/json"} if json else {}
        return self.client.post(f"/saml/{slug}/acs", data={"SAMLResponse": saml_response, **form},
                                headers=headers)

    def _login_cookie(self) -> str | None:
        cookie = (self.client.get_cookie("__Host-bridge-login")
                  or self.client.get_cookie("bridge-login"))
        return cookie.value if cookie is not None else None

    def code_from(self, response: TestResponse, login: Login) -> str:
        assert response.status_code == 302, response.get_data(as_text=True)
        location = urlsplit(response.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == login.redirect_uri
        query = parse_qs(location.query)
        assert query["state"] == [login.state]
        remember(query["code"][0], login.verifier)
        return query["code"][0]

    def login(self, user: str = "alice", **overrides: str) -> tuple[str, Login]:
        login = self.start(**overrides)
        return self.code_from(self.post_acs(self.signed_response(login, user)), login), login

    def exchange(self, code: str, verifier: str, **overrides: str) -> TestResponse:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": DEMO_REDIRECT,
            "client_id": "demo",
            "code_verifier": verifier,
        }
        form.update(overrides)
        response = self.client.post("/token", data=form)
        _remember_tokens(response)
        return response

    def tokens(self, user: str = "alice") -> dict[str, Any]:
        code, login = self.login(user)
        response = self.exchange(code, login.verifier)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def refresh(self, refresh_token: str, client_id: str = "demo") -> TestResponse:
        response = self.client.post("/token", data={"grant_type": "refresh_token",
                                                    "refresh_token": refresh_token,
                                                    "client_id": client_id})
        _remember_tokens(response)
        return response

    # --- what the database holds ---------------------------------------------------------------

    def count(self, model: type) -> int:
        with self.bridge.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def issued_nothing(self) -> bool:
        return all(self.count(m) == 0 for m in (AuthorizationCode, RefreshFamily, RefreshToken,
                                                  ConsumedAssertion))

    def last_audit(self) -> AuditEvent:
        with self.bridge.db.transaction() as session:
            event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event is not None, "no audit event was written"
        return event
