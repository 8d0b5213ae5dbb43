"""SAML endpoints: the Assertion Consumer Service, Single Logout and our SP metadata."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from bridge.idps.settings import SLUG_RE
from bridge.saml.sp import sp_metadata
from bridge.web.context import administration, application, services
from bridge.web.cookies import login_cookie_name
from bridge.web.errors import error_id
from bridge.web.saml_binding import send as send_saml

sso = Blueprint("sso", __name__)


@sso.post("/saml/<slug>/acs")
def acs(slug: str) -> BaseResponse:
    if not SLUG_RE.match(slug):
        slug = "-invalid-"
    location = application().acs.complete_login(
        slug,
        request.form.get("SAMLResponse"),
        request.cookies.get(login_cookie_name(services().settings)),
        relay_state=request.form.get("RelayState"),
        error_id=error_id(),
    )
    response = redirect(location, code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


@sso.get("/saml/metadata")
def metadata() -> BaseResponse:
    the_services = services()
    slugs = sorted(the_services.idps)
    body = sp_metadata(
        the_services.settings.sp_entity_id,
        [the_services.settings.acs_url(slug) for slug in slugs],
        the_services.sp_keys.encryption_certificates(),
        [the_services.settings.slo_url(slug) for slug in slugs],
        signing_certificates=the_services.sp_keys.signing_certificates(),
        authn_requests_signed=bool(slugs) and all(
            the_services.idps[slug].signs_authn_requests for slug in slugs),
    )
    return metadata_response(body)


@sso.get("/saml/<slug>/metadata")
def idp_metadata(slug: str) -> BaseResponse:
    """Our SP metadata for one IdP: its ACS and Single Logout URLs only. Public like
    /saml/metadata, and served for a draft too, so that Entra ID, AD FS or Shibboleth can read
    it by URL before the IdP's own metadata exists here."""
    return metadata_response(administration().idps.sp_metadata(slug))


def metadata_response(body: bytes, *, download_as: str | None = None) -> Response:
    """SAML metadata as served here and by the admin pages and API (there as a download)."""
    response = Response(body, mimetype="application/samlmetadata+xml")
    if download_as:
        response.headers["Content-Disposition"] = f'attachment; filename="{download_as}"'
    return response


def _signed_out(complete: bool = True) -> Response:
    return Response(render_template("signed_out.html", complete=complete), mimetype="text/html")


@sso.get("/saml/<slug>/slo")
def single_logout(slug: str) -> BaseResponse:
    """Single Logout (HTTP-Redirect binding): the IdP asks us to end a SAML session (a
    LogoutRequest, answered with our LogoutResponse), or answers the LogoutRequest we sent."""
    single_logout = application().single_logout
    if not SLUG_RE.match(slug):
        slug = "-invalid-"
    query = request.query_string.decode("latin-1")
    if "SAMLResponse" in request.args and "SAMLRequest" not in request.args:
        complete = single_logout.logout_response_received(slug, query, error_id=error_id())
        return _signed_out(complete)
    message = single_logout.idp_logout(slug, query, error_id=error_id())
    if message is None:
        return _signed_out()
    return send_saml(message)


@sso.get("/saml/<slug>/logout")
def logout_form(slug: str) -> BaseResponse:
    """Our LogoutRequest, posted to an IdP whose Single Logout takes HTTP-POST only: where the
    ``idp_logout_url`` of ``POST /logout`` leads for such an IdP."""
    if not SLUG_RE.match(slug):
        slug = "-invalid-"
    return send_saml(application().logout.logout_form(slug, request.args.get("ticket", "")))
