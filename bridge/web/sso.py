"""SAML endpoints: the Assertion Consumer Service and our SP metadata."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from bridge.saml.idp import SLUG_RE
from bridge.saml.sp import sp_metadata
from bridge.web.context import bridge
from bridge.web.cookies import login_cookie_name
from bridge.web.errors import error_id

sso = Blueprint("sso", __name__)


@sso.post("/saml/<slug>/acs")
def acs(slug: str) -> BaseResponse:
    the_bridge = bridge()
    if not SLUG_RE.match(slug):
        slug = "-invalid-"
    location = the_bridge.complete_login(
        slug,
        request.form.get("SAMLResponse"),
        request.cookies.get(login_cookie_name(the_bridge.settings)),
        relay_state=request.form.get("RelayState"),
        error_id=error_id(),
    )
    response = redirect(location, code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


@sso.get("/saml/metadata")
def metadata() -> BaseResponse:
    the_bridge = bridge()
    acs_urls = [the_bridge.settings.acs_url(slug) for slug in sorted(the_bridge.idps)]
    slo_urls = [the_bridge.settings.slo_url(slug) for slug in sorted(the_bridge.idps)]
    body = sp_metadata(the_bridge.settings.sp_entity_id, acs_urls,
                       the_bridge.sp_keys.encryption_certificates(), slo_urls)
    return metadata_response(body)


def metadata_response(body: bytes, *, download_as: str | None = None) -> Response:
    """SAML metadata as served here and by the admin pages and API (there as a download)."""
    response = Response(body, mimetype="application/samlmetadata+xml")
    if download_as:
        response.headers["Content-Disposition"] = f'attachment; filename="{download_as}"'
    return response


@sso.get("/saml/<slug>/slo")
def single_logout(slug: str) -> BaseResponse:
    """The IdP asks us to end a SAML session (IdP-initiated Single Logout)."""
    the_bridge = bridge()
    if not SLUG_RE.match(slug):
        slug = "-invalid-"
    location = the_bridge.idp_logout(slug, request.query_string.decode("latin-1"),
                                     error_id=error_id())
    if location is None:
        return Response("<!doctype html><title>Signed out</title><p>Signed out.</p>",
                        mimetype="text/html")
    return redirect(location, code=302)
