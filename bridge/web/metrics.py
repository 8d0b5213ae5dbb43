"""GET /metrics in the Prometheus text format. With the ``metrics_token`` setting (a secret:
``BRIDGE_METRICS_TOKEN`` or ``_FILE``), scrapers must send it as a bearer token; otherwise keep
/metrics off the public ingress."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.metrics import ScrapeTimeGauges, exposition
from bridge.tokens.secrets_util import constant_time_equal
from bridge.web.context import services

metrics_blueprint = Blueprint("metrics", __name__)
_TOKEN = "metrics_token"


@metrics_blueprint.record
def _read_token(state: BlueprintSetupState) -> None:
    # Read once, when the app is made, from the settings it serves with.
    state.app.extensions[_TOKEN] = state.app.extensions["bridge"].settings.metrics_token


def _certificates() -> list[tuple[str, float]]:
    now = dt.datetime.now(dt.UTC)
    return [(slug, max((c.not_after - now).total_seconds() / 86400
                       for c in idp.metadata.signing_certificates))
            for slug, idp in sorted(services().idps.items())]


def _sp_certificates() -> list[tuple[str, str, str, float]]:
    now = dt.datetime.now(dt.UTC)
    return [(key.use, key.state, key.id, (key.not_after - now).total_seconds() / 86400)
            for key in services().sp_keys.report() if key.state != "unpublished"]


def _pool() -> dict[str, float]:
    db = services().db
    pool = db.engine.pool
    # Beside the pool: the hot statements' connections (store/kept_connections.py).
    kept_busy, kept_idle = db.kept()
    status = {"checked_out": getattr(pool, "checkedout", lambda: 0)(),
              "size": getattr(pool, "size", lambda: 0)(),
              "overflow": getattr(pool, "overflow", lambda: 0)(),
              "kept_busy": kept_busy, "kept_idle": kept_idle}
    return {k: float(v) for k, v in status.items()}


@metrics_blueprint.get("/metrics")
def metrics() -> Response:
    token: str | None = current_app.extensions[_TOKEN]
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        # As bytes: compare_digest refuses two strings with any non-ASCII character (a 500).
        if scheme.lower() != "bearer" or not constant_time_equal(sent.strip(), token):
            return Response("metrics need a bearer token\n", status=401,
                            headers={"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
    return Response(exposition(ScrapeTimeGauges(_certificates, _pool, _sp_certificates)),
                    mimetype=CONTENT_TYPE_LATEST)
