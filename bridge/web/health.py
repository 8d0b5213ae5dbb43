"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, jsonify

from bridge.web.context import bridge
from bridge.web.errors import RETRY_AFTER_SECONDS

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz():
    if bridge().db.ping():
        return jsonify({"status": "ready"})
    response = jsonify({"status": "unavailable", "reason": "database unreachable"})
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response
