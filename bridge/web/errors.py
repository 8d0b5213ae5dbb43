"""The one error-translation table: ``BridgeError`` -> HTTP.

Browsers get an HTML page with the stable code and an error id; JSON callers get RFC 9457
problem+json; the token endpoint gets RFC 6749 §5.2 bodies. The full detail goes to the log under
the error id, never to the client.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bridge.errors import (
    BridgeError,
    ConfigError,
    Conflict,
    NotFound,
    SamlRejected,
    StoreUnavailable,
    TokenError,
)

log = logging.getLogger("bridge.web")

_SAML_STATUS = {"idp_unknown": 404, "saml_too_large": 413}
RETRY_AFTER_SECONDS = "5"
OAUTH_ENDPOINTS = ("/token", "/revoke", "/logout", "/introspect")


def error_id() -> str:
    """One id per request, shared by the log line, the audit event and the page."""
    if "error_id" not in g:
        g.error_id = secrets.token_hex(6)
    return str(g.error_id)


def status_of(error: BridgeError) -> int:
    if isinstance(error, StoreUnavailable):
        return 503
    if isinstance(error, ConfigError):
        # Through the admin API a ConfigError is a refused change (422, or 409 for a conflict);
        # anywhere else it is the bridge's own configuration failing a request.
        if request.path.startswith("/admin/"):
            return 409 if isinstance(error, Conflict) else 422
        return 503
    if error.code == "admin_unauthorized":
        return 401
    if error.code == "admin_csrf_invalid":
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, TokenError):
        return 401 if error.oauth_error in ("invalid_client", "invalid_token") else 400
    if isinstance(error, SamlRejected):
        return _SAML_STATUS.get(error.code, 400)
    return 400


def wants_json() -> bool:
    if request.path.startswith(("/admin/api/", "/admin/openapi")):
        return True  # an API answers in JSON whatever the client accepts
    best = request.accept_mimetypes.best_match(["text/html", "application/json",
                                                "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def render_error(error: BridgeError) -> Response:
    status = status_of(error)
    eid = error_id()
    log.warning("refused %s %s: %s [error_id=%s] %s", request.method, request.path, error.code,
                eid, error.log_detail)
    if isinstance(error, TokenError):
        response = jsonify({"error": error.oauth_error, "error_description": error.public_detail})
        if error.oauth_error == "invalid_token":
            # RFC 6750 §3: the challenge names the error.
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="token"'
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


def install(app: Flask) -> None:
    @app.errorhandler(BridgeError)
    def _bridge_error(error: BridgeError) -> Response:
        return render_error(error)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_error: RequestEntityTooLarge) -> Response:
        code = "saml_too_large" if request.path.startswith("/saml/") else "request_too_large"
        return render_error(SamlRejected(code, "The request is larger than this bridge accepts."))

    @app.errorhandler(429)
    def _rate_limited(error: HTTPException) -> Response:
        if request.path in OAUTH_ENDPOINTS:
            # The OAuth endpoints answer in their own error format (RFC 6749 §5.2).
            response = jsonify({"error": "slow_down", "error_description": "Too many requests."})
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
        if wants_json():
            response = jsonify({"type": "about:blank", "title": error.name,
                                "status": error.code, "code": error.name.lower().replace(" ", "_")})
            response.mimetype = "application/problem+json"
        else:
            response = Response(render_template(
                "error.html", code=error.name.lower().replace(" ", "_"),
                detail=error.description, error_id=error_id()))
        response.status_code = error.code or 500
        return response

    @app.errorhandler(Exception)
    def _bug(error: Exception) -> Response:
        # A 500 is a bug: log everything under the id, show nothing internal.
        eid = error_id()
        log.exception("unhandled error [error_id=%s]", eid)
        if wants_json() or request.path == "/token":
            response = jsonify({"error": "server_error", "error_id": eid})
        else:
            response = Response(render_template("error.html", code="server_error",
                                                detail="Something went wrong on our side.",
                                                error_id=eid))
        response.status_code = 500
        return response
