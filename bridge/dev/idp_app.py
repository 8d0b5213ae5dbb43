"""HTTP front of the development IdP: login form, SSO endpoint, metadata."""

from __future__ import annotations

import html
import secrets

from flask import Flask, Response, abort, request

from bridge.dev.saml_idp import (
    MFA_CONTEXT,
    PASSWORD_CONTEXT,
    SECOND_FACTOR_CODE,
    DevIdp,
    PendingRequest,
)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
input{{display:block;width:100%;margin:.3rem 0 1rem;padding:.5rem}}button{{padding:.5rem 1rem}}
input[type=checkbox]{{display:inline;width:auto;margin:0 .4rem 1rem 0}}
.note{{color:#5b6373;font-size:.9rem}}</style></head><body>{body}</body></html>"""


def create_idp_app(idp: DevIdp) -> Flask:
    app = Flask(__name__)
    pending: dict[str, PendingRequest] = {}

    @app.get("/metadata")
    def metadata() -> Response:
        return Response(idp.metadata_xml(), mimetype="application/samlmetadata+xml")

    @app.get("/sso/redirect")
    def sso() -> Response:
        saml_request = request.args.get("SAMLRequest")
        if not saml_request:
            abort(400, "SAMLRequest missing")
        try:
            # SigAlg and Signature too: pysaml2 checks them when the IdP wants signed requests.
            parsed = idp.parse_request(saml_request, request.args.get("RelayState"),
                                       sigalg=request.args.get("SigAlg"),
                                       signature=request.args.get("Signature"))
        except ValueError as exc:
            abort(400, str(exc))
        if parsed.is_passive:
            # It keeps no sessions, so it can never log anyone in without asking.
            return _post_to_sp(parsed, idp.failure_for(parsed))
        ticket = secrets.token_urlsafe(16)
        pending[ticket] = parsed
        users = ", ".join(f"{u.username}/{u.password}" for u in idp.users.values())
        asked = ("<p class='note' id='mfa-asked'>This application asks for a second factor.</p>"
                 if parsed.wants_mfa else "")
        body = f"""<h1>Development IdP</h1>{asked}
<form method="post" action="/login">
<input type="hidden" name="ticket" value="{ticket}">
<label>Username<input name="username" id="username" autofocus></label>
<label>Password<input name="password" id="password" type="password"></label>
<label><input type="checkbox" name="second_factor" id="second-factor" value="1"
{"checked" if parsed.wants_mfa else ""}>Confirm with a second factor</label>
<label>One-time code<input name="otp" id="otp" inputmode="numeric" autocomplete="one-time-code"></label>
<button type="submit" id="sign-in">Sign in</button></form>
<p class="note">Test users (username/password): {html.escape(users)}. One-time code:
{SECOND_FACTOR_CODE} (asserted as {MFA_CONTEXT}).</p>"""
        return Response(_PAGE.format(title="Development IdP", body=body))

    @app.get("/slo/redirect")
    def single_logout() -> Response:
        saml_request = request.args.get("SAMLRequest")
        if not saml_request:
            abort(400, "SAMLRequest missing")
        name_id = idp.receive_logout_request(
            saml_request, relay_state=request.args.get("RelayState"),
            sigalg=request.args.get("SigAlg"), signature=request.args.get("Signature")).name_id
        body = f"<h1 id='signed-out'>Signed out</h1><p>{html.escape(name_id)} is signed out.</p>"
        return Response(_PAGE.format(title="Signed out", body=body))

    @app.post("/login")
    def login() -> Response:
        ticket = request.form.get("ticket", "")
        parsed = pending.get(ticket)
        if parsed is None:
            abort(400, "unknown or used login ticket; start again from the application")
        user = idp.users.get(request.form.get("username", ""))
        if user is None or not secrets.compare_digest(user.password,
                                                      request.form.get("password", "")):
            body = "<h1>Wrong username or password</h1><p><a href='javascript:history.back()'>Back</a></p>"
            return Response(_PAGE.format(title="Login failed", body=body), status=401)
        second_factor = request.form.get("second_factor") == "1"
        if second_factor and not secrets.compare_digest(request.form.get("otp", ""),
                                                        SECOND_FACTOR_CODE):
            body = "<h1>Wrong one-time code</h1><p><a href='javascript:history.back()'>Back</a></p>"
            return Response(_PAGE.format(title="Login failed", body=body), status=401)
        if parsed.wants_mfa and not second_factor:
            # As an IdP honouring RequestedAuthnContext does: no weaker login than asked.
            body = ("<h1>A second factor is required</h1><p>This application asks for one. "
                    "<a href='javascript:history.back()'>Back</a></p>")
            return Response(_PAGE.format(title="Login failed", body=body), status=401)
        del pending[ticket]
        context = MFA_CONTEXT if second_factor else PASSWORD_CONTEXT
        return _post_to_sp(parsed, idp.response_for(parsed, user, class_ref=context))

    return app


def _post_to_sp(parsed: PendingRequest, saml_response: str) -> Response:
    """HTTP-POST binding (SAML Bindings §3.5): an auto-submitting form to the ACS."""
    relay = ""
    if parsed.relay_state:
        relay = f'<input type="hidden" name="RelayState" value="{html.escape(parsed.relay_state)}">'
    body = f"""<form method="post" action="{html.escape(parsed.acs_url)}" id="saml-post">
<input type="hidden" name="SAMLResponse" value="{saml_response}">{relay}
<noscript><button type="submit">Continue</button></noscript></form>
<script>document.getElementById('saml-post').submit()</script>"""
    return Response(_PAGE.format(title="Signing in", body=body))
