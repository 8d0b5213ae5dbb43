"""The one error-translation table: ``BridgeError`` -> HTTP.

Browsers get an HTML page with the stable code and an error id; JSON callers get RFC 9457
problem+json; the token endpoint gets RFC 6749 §5.2 bodies. The full detail goes to the log under
the error id, never to the client.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, Response, g, has_request_context, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bridge.audit import bounded_detail
from bridge.errors import (
    AdminForbidden,
    AdminUnauthorized,
    AuthorizeError,
    BridgeError,
    ConfigError,
    Conflict,
    Deprovisioned,
    DpopError,
    FetchRefused,
    IdpUnknown,
    InvalidInput,
    InvalidValue,
    LoginUnmet,
    Misconfigured,
    NotFound,
    ProvisioningConflict,
    ProvisioningError,
    ProvisioningUnauthorized,
    SamlRejected,
    SecurityEventRejected,
    StaleChange,
    StoreUnavailable,
    TokenError,
    TooLarge,
)
from bridge.web.dpop_headers import add_dpop_nonce, dpop_challenge

log = logging.getLogger("bridge.web")

# Each error type's HTTP status; an error takes the entry of the nearest class in its MRO.
STATUS: dict[type[BridgeError], int] = {
    BridgeError: 400,
    ConfigError: 422,  # a configuration or change refused; nothing was changed
    InvalidInput: 422,
    FetchRefused: 422,
    Conflict: 409,
    # RFC 9110 §13.1.1: an If-Match that names another state of the resource.
    StaleChange: 412,
    Misconfigured: 503,  # the bridge cannot serve this with its configuration
    SamlRejected: 400,
    IdpUnknown: 404,
    TooLarge: 413,
    # Told to the client on its redirect URI; 400 only where there is no client to tell.
    LoginUnmet: 400,
    Deprovisioned: 403,  # the IdP has deactivated this person
    ProvisioningError: 400,
    ProvisioningUnauthorized: 401,
    ProvisioningConflict: 409,
    SecurityEventRejected: 400,  # RFC 8935 §2.3: every refusal of a SET is a 400
    AuthorizeError: 400,
    TokenError: 400,
    AdminUnauthorized: 401,
    AdminForbidden: 403,
    NotFound: 404,
    InvalidValue: 400,
    StoreUnavailable: 503,
}
# RFC 6749 §5.2 (invalid_client) and RFC 6750 §3.1 (invalid_token) answer 401.
# Resources (RFC 9449 §7.1) answer 401 to every DPoP refusal, the token endpoint 400 (§5).
RESOURCES = ("/userinfo",)
OAUTH_UNAUTHORIZED = frozenset({"invalid_client", "invalid_token"})
RETRY_AFTER_SECONDS = "5"
OAUTH_ENDPOINTS = ("/token", "/revoke", "/logout", "/introspect")
SCIM_PREFIX = "/scim/"
EVENTS_PREFIX = "/events/"


def error_id() -> str:
    """One id per request, shared by the log line, the audit event and the page."""
    if "error_id" not in g:
        g.error_id = secrets.token_hex(6)
    return str(g.error_id)


def status_of(error: BridgeError) -> int:
    if isinstance(error, TokenError) and error.oauth_error in OAUTH_UNAUTHORIZED:
        return 401
    if isinstance(error, DpopError) and has_request_context() and request.path in RESOURCES:
        return 401
    return next(STATUS[cls] for cls in type(error).__mro__ if cls in STATUS)


def wants_json() -> bool:
    if request.path.startswith(("/admin/api/", "/admin/openapi")):
        return True  # an API answers in JSON whatever the client accepts
    best = request.accept_mimetypes.best_match(["text/html", "application/json",
                                                "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def _oauth_error(error: BridgeError, status: int) -> str:
    """The RFC 6749 error of a refusal that is no ``TokenError``."""
    if status == 503:
        return "temporarily_unavailable"
    if status >= 500:
        return "server_error"
    return str(getattr(error, "oauth_error", "invalid_request"))


def render_error(error: BridgeError) -> Response:
    status = status_of(error)
    eid = error_id()
    log.warning("refused %s %s: %s [error_id=%s] %s", request.method, request.path, error.code,
                eid, bounded_detail(error.log_detail))
    if isinstance(error, TokenError):
        response = jsonify({"error": error.oauth_error, "error_description": error.public_detail})
        if isinstance(error, DpopError):
            add_dpop_nonce(response, error.nonce)
            if request.path in RESOURCES:
                response.headers["WWW-Authenticate"] = dpop_challenge(error.oauth_error)
        elif error.oauth_error == "invalid_token":
            # RFC 6750 §3: the challenge names the error.
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="token"'
    elif request.path.startswith(SCIM_PREFIX):
        response = scim_error(status, error.public_detail or error.code, error.code,
                              getattr(error, "scim_type", None))
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    elif request.path.startswith(EVENTS_PREFIX):
        # RFC 8935 §2.4: the error code and a description, nothing else.
        response = jsonify({"err": getattr(error, "set_error", "invalid_request"),
                            "description": error.public_detail or error.code})
    elif request.path in OAUTH_ENDPOINTS:
        # RFC 6749 §5.2 (RFC 7009 §2.2.1, RFC 7662 §2.3): an OAuth client reads this shape only,
        # whatever went wrong (the database unreachable, say).
        response = jsonify({"error": _oauth_error(error, status),
                            "error_description": error.public_detail or error.code})
    elif wants_json():
        response = jsonify({
            "type": f"https://bridge.invalid/errors#{error.code}",
            "title": error.public_detail or error.code,
            "status": status,
            "code": error.code,
            "error_id": eid,
            **({"problems": error.problems} if isinstance(error, ConfigError) else {}),
        })
        response.mimetype = "application/problem+json"
    else:
        response = Response(render_template("error.html", code=error.code,
                                            detail=error.public_detail, error_id=eid))
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    response.headers["Cache-Control"] = "no-store"
    return response


def scim_error(status: int, detail: str, code: str, scim_type: str | None = None) -> Response:
    """An RFC 7644 §3.12 error body; ``code`` is our stable code, for the operator."""
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status),
            "detail": f"{code}: {detail}" if detail != code else code}
    if scim_type:
        body["scimType"] = scim_type
    response = jsonify(body)
    response.mimetype = "application/scim+json"
    response.status_code = status
    return response


def install(app: Flask) -> None:
    @app.errorhandler(BridgeError)
    def _bridge_error(error: BridgeError) -> Response:
        return render_error(error)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_error: RequestEntityTooLarge) -> Response:
        code = "saml_too_large" if request.path.startswith("/saml/") else "request_too_large"
        return render_error(TooLarge(code, "The request is larger than this bridge accepts."))

    @app.errorhandler(429)
    def _rate_limited(error: HTTPException) -> Response:
        if request.path in OAUTH_ENDPOINTS:
            # The OAuth endpoints answer in their own error format (RFC 6749 §5.2).
            response = jsonify({"error": "slow_down", "error_description": "Too many requests."})
        elif request.path.startswith(SCIM_PREFIX):
            response = scim_error(429, "Too many requests; try again after Retry-After.",
                                  "rate_limited")
        elif request.path.startswith(EVENTS_PREFIX):
            # RFC 8935 §2.3: an HTTP condition, told by its status; the body in the shape of
            # the receiver's other errors. No registered err code fits: ours, as is.
            response = jsonify({"err": "rate_limited",
                                "description": "Too many requests; try again after Retry-After."})
        elif wants_json():
            response = jsonify({"type": "about:blank", "title": "Too many requests",
                                "status": 429, "code": "rate_limited"})
            response.mimetype = "application/problem+json"
        else:
            response = Response(render_template("error.html", code="rate_limited",
                                                detail="Too many requests; try again shortly.",
                                                error_id=error_id()))
        response.status_code = 429
        retry_after = getattr(error, "retry_after", None)
        response.headers["Retry-After"] = str(retry_after or 60)
        return response

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        if request.path.startswith(SCIM_PREFIX):
            code = error.name.lower().replace(" ", "_")
            return scim_error(error.code or 500, error.description or code, code)
        status = error.code or 500
        if request.path in OAUTH_ENDPOINTS:  # RFC 6749 §5.2, as for every refusal there
            response = jsonify({"error": "invalid_request" if status < 500 else "server_error",
                                "error_description": error.name})
        elif wants_json():
            response = jsonify({"type": "about:blank", "title": error.name,
                                "status": error.code, "code": error.name.lower().replace(" ", "_")})
            response.mimetype = "application/problem+json"
        else:
            response = Response(render_template(
                "error.html", code=error.name.lower().replace(" ", "_"),
                detail=error.description, error_id=error_id()))
        response.status_code = status
        # RFC 9110 §15.5.6: a 405 names the methods the resource takes.
        allow = dict(error.get_headers()).get("Allow")
        if allow:
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    def _bug(error: Exception) -> Response:
        # A 500 is a bug: log everything under the id, show nothing internal.
        eid = error_id()
        log.exception("unhandled error [error_id=%s]", eid)
        if request.path.startswith(SCIM_PREFIX):  # a SCIM client reads SCIM errors only
            return scim_error(500, f"Something went wrong on our side (error_id {eid}).",
                              "server_error")
        if request.path.startswith(EVENTS_PREFIX):  # RFC 8935 §2.4's shape; a 5xx is retried
            response = jsonify({"err": "server_error", "description": f"error_id {eid}"})
        elif wants_json() or request.path in OAUTH_ENDPOINTS:
            response = jsonify({"error": "server_error", "error_id": eid})
        else:
            response = Response(render_template("error.html", code="server_error",
                                                detail="Something went wrong on our side.",
                                                error_id=eid))
        response.status_code = 500
        return response
