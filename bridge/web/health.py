"""Liveness (the process answers) and readiness (it can serve: database and keys)."""

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
    """Ready when the database answers and the key-encryption key decrypts every stored key: a
    node with the wrong key would otherwise take traffic and fail at its first signature."""
    if not bridge().db.ping():
        return _unavailable("database unreachable")
    problems = bridge().key_problems()
    if problems:
        return _unavailable(problems[0])
    return jsonify({"status": "ready"})


def _unavailable(reason: str):
    response = jsonify({"status": "unavailable", "reason": reason})
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response
