"""``create_app``: settings in, WSGI application out."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from bridge import metrics
from bridge.application import build_application
from bridge.clock import Clock, SystemClock
from bridge.config import Settings, load_settings
from bridge.errors import InvalidValue
from bridge.jobs.standard import start_scheduler
from bridge.logs import log_access, request_id
from bridge.services import Services, build_services
from bridge.web import (
    admin_client_pages,  # noqa: F401  (adds the client pages to admin_pages)
    cors,
    errors,
    rate_limits,
)
from bridge.web.admin_api import admin_api_blueprint
from bridge.web.admin_pages import admin_pages
from bridge.web.discovery import discovery
from bridge.web.errors import error_id
from bridge.web.health import health
from bridge.web.metrics import metrics_blueprint
from bridge.web.oauth import oauth
from bridge.web.registration import registration
from bridge.web.scim import scim
from bridge.web.security_events import security_events
from bridge.web.sso import sso
from bridge.web.userinfo import userinfo

access_log = logging.getLogger("bridge.access")
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               services: Services | None = None) -> Flask:
    if services is None:
        settings = settings or load_settings()
        services = build_services(settings, clock or SystemClock())
    settings = services.settings
    application = build_application(services)
    app = Flask(__name__)
    app.config.update(
        # The largest body we accept: a SAMLResponse at its limit, base64-encoded, plus the form.
        MAX_CONTENT_LENGTH=settings.max_saml_response_bytes * 4 // 3 + 16 * 1024,
        MAX_FORM_MEMORY_SIZE=settings.max_saml_response_bytes * 4 // 3 + 16 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["bridge"] = services
    app.extensions["application"] = application
    app.extensions["admin"] = application.admin
    if settings.background_jobs:
        app.extensions["scheduler"] = start_scheduler(services, application.admin.idps)
    errors.install(app)
    cors.install(app)
    for blueprint in (oauth, sso, discovery, health, userinfo, admin_api_blueprint, admin_pages,
                      metrics_blueprint, registration, scim, security_events):
        app.register_blueprint(blueprint)
    app.extensions["limiter"] = rate_limits.install(app, settings)
    if settings.trusted_proxy_hops:
        # Only the client address comes from the proxy; scheme and host come from base_url.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops,  # type: ignore[method-assign]
                                x_proto=0, x_host=0, x_port=0, x_prefix=0)

    @app.before_request
    def _request_id() -> None:
        # One id per request, on every log line of it and in the answer, so a person can quote it.
        request_id.set(error_id())
        g.started = time.perf_counter()

    @app.before_request
    def _utf8_query() -> None:
        # werkzeug decodes the query string as strict UTF-8 when a view first reads request.args:
        # raw bytes that are not UTF-8 (sent unescaped, passed through by the server) were a 500.
        try:
            request.query_string.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValue("value_invalid", "The query string is not UTF-8.") from None

    @app.after_request
    def _security_headers(response):
        response.headers["X-Request-Id"] = error_id()
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.LATENCY.labels(request.method, rule, str(response.status_code)).observe(elapsed)
        if request.path not in QUIET_PATHS:
            # The path only: query strings can carry one-time values (tickets, codes).
            log_access(access_log, request.method, request.path, response.status_code,
                       round(elapsed * 1000, 2))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        return response

    return app
