"""``create_app``: settings in, WSGI application out."""

from __future__ import annotations

import logging

from flask import Flask

from bridge.admin.services import AdminServices
from bridge.clock import Clock, SystemClock
from bridge.config import Settings, load_settings
from bridge.federation import Bridge
from bridge.web import cors, errors
from bridge.web.admin_api import admin_api_blueprint
from bridge.web.admin_pages import admin_pages
from bridge.web.discovery import discovery
from bridge.web.health import health
from bridge.web.oauth import oauth
from bridge.web.sso import sso
from bridge.web.userinfo import userinfo


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               bridge: Bridge | None = None) -> Flask:
    if bridge is None:
        settings = settings or load_settings()
        bridge = Bridge.from_settings(settings, clock or SystemClock())
    settings = bridge.settings
    app = Flask(__name__)
    app.config.update(
        # The largest body we accept: a SAMLResponse at its limit, base64-encoded, plus the form.
        MAX_CONTENT_LENGTH=settings.max_saml_response_bytes * 4 // 3 + 16 * 1024,
        MAX_FORM_MEMORY_SIZE=settings.max_saml_response_bytes * 4 // 3 + 16 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["bridge"] = bridge
    app.extensions["admin"] = AdminServices.attach(bridge)
    errors.install(app)
    cors.install(app)
    for blueprint in (oauth, sso, discovery, health, userinfo, admin_api_blueprint, admin_pages):
        app.register_blueprint(blueprint)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        return response

    logging.getLogger("bridge").setLevel(logging.INFO)
    return app
