"""OAuth 2.0 endpoints: /authorize, /token, /revoke, /logout, /introspect."""

from __future__ import annotations

import datetime as dt
import json
from email.utils import format_datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from bridge.config import ClientConfig, origin_of
from bridge.errors import AuthorizeError, TokenError
from bridge.login.start import IdpChoice
from bridge.oauth.requests import authenticate_client, parse_authorization_request
from bridge.oauth.tokens import TokenSet
from bridge.web.context import application, services
from bridge.web.cookies import (
    REFRESH_HEADER,
    clear_legacy_refresh_cookie,
    clear_refresh_cookie,
    legacy_refresh_cookie_name,
    login_cookie_name,
    refresh_cookie_name,
    set_login_cookie,
    set_refresh_cookie,
)
from bridge.web.dpop_headers import add_dpop_nonce, dpop_proofs
from bridge.web.form_body import posted_form
from bridge.web.rate_limits import count_client
from bridge.web.saml_binding import send as send_saml

oauth = Blueprint("oauth", __name__)
# Made once: json.dumps builds an encoder per call whenever it is given an argument of its own.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_TOKEN_RESPONSE_HEADERS = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


@oauth.get("/authorize")
def authorize() -> BaseResponse:
    settings = services().settings
    login = application().login
    params = request.args.to_dict()
    try:
        auth_request = parse_authorization_request(services().clients, params)
        idp = login.choose_idp(auth_request)
        if isinstance(idp, IdpChoice):
            links = [(i.display_name, "/authorize?" + urlencode({**params, "idp": i.slug}))
                     for i in idp.idps]
            return Response(render_template("choose_idp.html", links=links))
        start = login.start_login(auth_request, idp,
                                  request.cookies.get(login_cookie_name(settings)))
    except AuthorizeError as error:
        if not error.redirectable:
            raise
        # RFC 6749 §4.1.2.1: client and redirect_uri are verified; the error goes back to it.
        query = {"error": error.oauth_error, "error_description": error.public_detail}
        if params.get("state"):
            query["state"] = params["state"]
        uri = params["redirect_uri"]
        return redirect(uri + ("&" if "?" in uri else "?") + urlencode(query), code=302)
    # A redirect to the IdP, or a page that posts the request to it (SAML HTTP-POST binding).
    response = send_saml(start.message)
    set_login_cookie(response, settings, start.browser_token)
    return response


def _basic_auth() -> tuple[str, str] | None:
    try:
        auth = request.authorization
    except ValueError:  # werkzeug refuses a header that is not ASCII
        raise TokenError("invalid_client", "The Authorization header is malformed.",
                         code="client_authentication_failed") from None
    if auth is None or auth.type != "basic":
        return None
    return auth.username or "", auth.password or ""


@oauth.post("/token")
def token() -> BaseResponse:
    form = posted_form()
    client = authenticate_client(services().clients, form, _basic_auth())
    count_client(client)
    grant_type = form.get("grant_type")
    if _uses_cookie(client) and grant_type in ("authorization_code", "refresh_token"):
        # The answer sets the refresh cookie: a cross-site form must not plant its login there.
        _check_origin(client)
    if grant_type == "refresh_token":
        # A cookie client's refresh token may come in its cookie instead of the form.
        form["refresh_token"] = _presented_refresh_token(client, form, "refresh_token")
    dpop = application().dpop
    dpop_jkt = dpop.for_token_request(client, dpop_proofs())
    response = _token_response(application().tokens.issue(client, form, dpop_jkt=dpop_jkt))
    if client.dpop != "off":
        add_dpop_nonce(response, dpop.fresh_nonce())
    return response


def _uses_cookie(client: ClientConfig) -> bool:
    return client.refresh_token_delivery == "cookie"


def _presented_refresh_token(client: ClientConfig, form: dict[str, str], field: str) -> str:
    """The refresh token in the form's ``field``; for cookie clients that send none there, the
    one in the client's refresh cookie. Empty when there is neither.

    An empty field counts as no field: otherwise ``refresh_token=`` in a cross-site form would
    skip the cookie's checks below and still reach the code that clears the cookie."""
    value = form.get(field) or None
    if value is None and _uses_cookie(client):
        value = _refresh_token_from_cookie(client)
    return value or ""


def _check_origin(client: ClientConfig) -> None:
    # The Origin the browser reports must be one of the client's: requests of a cookie client
    # set, read or clear its cookie, which the browser handles on its own, whoever sent them.
    origin = request.headers.get("Origin")
    if origin not in (*client.allowed_origins, origin_of(services().settings.base_url)):
        raise TokenError("invalid_request", "This origin may not use the refresh cookie.",
                         code="csrf_origin_invalid", log_detail={"origin": (origin or "")[:200]})


def _refresh_token_from_cookie(client: ClientConfig) -> str | None:
    # A cookie is sent by the browser on its own, so a cross-site request could ride on it.
    # Two defences: a header that a cross-site form cannot set (and that script elsewhere may
    # only send after a CORS preflight we answer for registered origins alone), and the Origin
    # the browser reports, which must be one of the client's.
    if request.headers.get(REFRESH_HEADER) != "1":
        raise TokenError("invalid_request",
                         f"Cookie refreshes require the {REFRESH_HEADER}: 1 header.",
                         code="csrf_header_missing")
    _check_origin(client)
    settings = services().settings
    value = request.cookies.get(refresh_cookie_name(settings, client))
    if not value:
        # A login made while every client shared one cookie name (docs/decisions/0009). It may
        # hold another client's login: then it is not this client's to use, or to clear.
        legacy = request.cookies.get(legacy_refresh_cookie_name(settings))
        if legacy and application().revocation.refresh_token_client(legacy) == client.client_id:
            value = legacy
            g.legacy_refresh_cookie = True
    return value


def _set_cookie_answer(response: BaseResponse, client: ClientConfig, value: str | None, *,
                       max_age: int = 0) -> None:
    """Set (``value``) or clear the client's refresh cookie; retire the shared one it came in."""
    settings = services().settings
    if value:
        set_refresh_cookie(response, settings, client, value, max_age=max_age)
    else:
        clear_refresh_cookie(response, settings, client)
    if g.get("legacy_refresh_cookie"):
        clear_legacy_refresh_cookie(response, settings)


def _token_response(tokens: TokenSet) -> BaseResponse:
    in_cookie = _uses_cookie(tokens.client)
    # Serialized directly: Flask's JSON provider adds nothing to a body of strings and numbers.
    # RFC 6749 §5.1: token responses must not be cached.
    response = Response(_COMPACT_JSON.encode(tokens.body(include_refresh=not in_cookie)),
                        headers=_TOKEN_RESPONSE_HEADERS, content_type="application/json")
    if in_cookie and tokens.refresh_token:
        _set_cookie_answer(response, tokens.client, tokens.refresh_token,
                           max_age=tokens.client.refresh_token_ttl_seconds)
    if tokens.claims_sunset is not None:
        # RFC 8594: the claims version this client receives is being retired.
        end = dt.datetime.combine(tokens.claims_sunset, dt.time(23, 59, 59), dt.UTC)
        response.headers["Sunset"] = format_datetime(end, usegmt=True)
    return response


@oauth.post("/revoke")
def revoke() -> BaseResponse:
    form = posted_form()
    client = authenticate_client(services().clients, form, _basic_auth())
    if _uses_cookie(client):
        _check_origin(client)  # the answer clears the cookie
    token_value = _presented_refresh_token(client, form, "token")
    if not token_value:
        raise TokenError("invalid_request", "token is required.")
    # RFC 7009 §2.1: the hint is optional; an empty one is none.
    if (form.get("token_type_hint") or None) not in (None, "refresh_token", "access_token"):
        raise TokenError("unsupported_token_type", "Unknown token_type_hint.")
    dpop_jkt = application().dpop.for_token_request(
        client, dpop_proofs(), path="/revoke", required=False)
    application().revocation.revoke(client, token_value, dpop_jkt)
    response = Response(status=200)
    if client.dpop != "off":
        add_dpop_nonce(response, application().dpop.fresh_nonce())
    if _uses_cookie(client):
        _set_cookie_answer(response, client, None)
    return response


@oauth.post("/logout")
def logout() -> BaseResponse:
    """End the login at the bridge: revoke its refresh family and clear the cookie. With
    ``idp_logout=true`` the answer also carries the URL that continues to SAML Single Logout at
    the IdP, for the client to send the browser to."""
    form = posted_form()
    client = authenticate_client(services().clients, form, _basic_auth())
    if _uses_cookie(client):
        _check_origin(client)  # the answer clears the cookie
    token_value = _presented_refresh_token(client, form, "refresh_token")
    dpop_jkt = application().dpop.for_token_request(
        client, dpop_proofs(), path="/logout", required=False)
    idp_logout_url = application().logout.logout(client, token_value,
                                                 idp_logout=form.get("idp_logout") == "true",
                                                 dpop_jkt=dpop_jkt)
    body: dict[str, object] = {"logged_out": True}
    if idp_logout_url:
        body["idp_logout_url"] = idp_logout_url
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    if client.dpop != "off":
        add_dpop_nonce(response, application().dpop.fresh_nonce())
    if _uses_cookie(client):
        _set_cookie_answer(response, client, None)
    return response


@oauth.post("/introspect")
def introspect() -> BaseResponse:
    """RFC 7662 token introspection, for confidential clients (APIs register as such)."""
    form = posted_form()
    client = authenticate_client(services().clients, form, _basic_auth())
    if client.public:
        raise TokenError("invalid_client", "Only confidential clients may introspect tokens.",
                         code="client_not_confidential")
    if not form.get("token"):
        raise TokenError("invalid_request", "token is required.")
    response = jsonify(application().introspection.introspect(client, form["token"]))
    response.headers["Cache-Control"] = "no-store"
    return response
