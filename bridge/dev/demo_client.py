"""A small OAuth client for the demo: PKCE login against the bridge, then it shows the access
token it received, verified through the bridge's JWKS exactly as a downstream API would."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
from urllib.parse import urlencode

import jwt
import requests
from flask import Flask, Response, redirect, request

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo app</title>
<style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:3rem auto;padding:0 1rem}}
pre{{background:#f0f2f5;padding:1rem;overflow:auto}}a.button{{display:inline-block;padding:.6rem 1.2rem;
background:#1f6feb;color:#fff;border-radius:6px;text-decoration:none}}</style></head>
<body><h1>Demo app</h1>{body}</body></html>"""


def create_demo_app(*, bridge_url: str, public_url: str, client_id: str = "demo",
                    audience: str = "demo-api") -> Flask:
    app = Flask(__name__)
    logins: dict[str, str] = {}  # state -> code_verifier
    sessions: dict[str, dict[str, object]] = {}
    redirect_uri = f"{public_url}/callback"

    @app.get("/")
    def home() -> Response:
        shown = sessions.get(request.cookies.get("demo_session", ""))
        if shown is None:
            body = ('<p>You are not signed in.</p><a class="button" id="sign-in" href="/login">Sign in</a>'
                    '<p id="who-is-admin">Test users: <strong>alice</strong>/alice is the bridge '
                    'admin (her IdP group bridge-admins gives her the bridge-admin role: sign in '
                    f'at <a href="{bridge_url}/admin/">{bridge_url}/admin/</a>); bob/bob is an '
                    'ordinary user.</p>')
        else:
            header = html.escape(json.dumps(shown["header"], indent=2))
            claims = html.escape(json.dumps(shown["claims"], indent=2))
            token = html.escape(str(shown["token"]))
            body = (f'<p id="signed-in">Signed in. The bridge issued this access token '
                    f'({len(token)} bytes), verified with its JWKS:</p>'
                    f'<h2>Header</h2><pre id="header">{header}</pre>'
                    f'<h2>Claims</h2><pre id="claims">{claims}</pre>'
                    f'<h2>Token</h2><pre style="white-space:pre-wrap;word-break:break-all">{token}</pre>'
                    '<a class="button" href="/logout">Sign out</a>')
        return Response(_PAGE.format(body=body))

    @app.get("/login")
    def login() -> Response:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        logins[state] = verifier
        query = urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
            "scope": "openid profile email groups",
        })
        return redirect(f"{bridge_url}/authorize?{query}")  # type: ignore[return-value]

    @app.get("/callback")
    def callback() -> Response:
        if "error" in request.args:
            failure = f"{request.args['error']} {request.args.get('error_description', '')}"
            return Response(_PAGE.format(body=f"<p>Login failed: {html.escape(failure)}</p>"), 400)
        verifier = logins.pop(request.args.get("state", ""), None)
        if verifier is None:
            return Response(_PAGE.format(body="<p>Unknown state: start again.</p>"), 400)
        answer = requests.post(f"{bridge_url}/token", data={
            "grant_type": "authorization_code", "code": request.args.get("code", ""),
            "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": verifier,
        }, timeout=10)
        if answer.status_code != 200:
            return Response(_PAGE.format(body=f"<pre>{html.escape(answer.text)}</pre>"), 502)
        token = answer.json()["access_token"]
        jwks = jwt.PyJWKClient(f"{bridge_url}/.well-known/jwks.json")
        signing_key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, signing_key.key, algorithms=["ES256", "EdDSA", "RS256"],
                            audience=audience, issuer=bridge_url)
        sid = secrets.token_urlsafe(16)
        sessions[sid] = {"token": token, "header": jwt.get_unverified_header(token), "claims": claims}
        response = redirect("/")
        response.set_cookie("demo_session", sid, httponly=True, samesite="Lax")
        return response  # type: ignore[return-value]

    @app.get("/logout")
    def logout() -> Response:
        sessions.pop(request.cookies.get("demo_session", ""), None)
        response = redirect("/")
        response.delete_cookie("demo_session")
        return response  # type: ignore[return-value]

    return app
