"""Liveness (the process answers) and readiness (it can serve: database and keys).

Readiness is the database answering and the key-encryption key decrypting every stored key,
nothing else. Background jobs are reported in its details (their state on every node, and whether
this process's scheduler is running) but never make it fail: a node that serves requests correctly
must not be drained because a job failed (any node can run it next time; alert on
``bridge_background_job_runs_total{result="failure"}`` instead). Only states and times are shown
here, unauthenticated; the error itself is in the log and in ``bridge jobs status``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import exc as sa_exc

from bridge.jobs import leases as jobs
from bridge.services import key_problems
from bridge.web.context import services
from bridge.web.errors import RETRY_AFTER_SECONDS

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


def _jobs() -> dict[str, Any]:
    scheduler = current_app.extensions.get("scheduler")
    details: dict[str, Any] = {
        "scheduler": "disabled" if scheduler is None else
                     "running" if scheduler.running else "stopped",
    }
    try:
        details["jobs"] = {job.name: {"status": job.state, "last_run_at": job.last_run_at,
                                      "last_success_at": job.last_success_at,
                                      "consecutive_failures": job.consecutive_failures}
                           for job in jobs.status(services().db)}
    except sa_exc.SQLAlchemyError:
        details["jobs"] = None  # unknown just now; readiness is the ping above
    return details


@health.get("/readyz")
def readyz():
    """Ready when the database answers and the key-encryption key decrypts every stored key: a
    node with the wrong key would otherwise take traffic and fail at its first signature."""
    if not services().db.ping():
        return _unavailable("database unreachable")
    problems = key_problems(services())
    if problems:
        return _unavailable(problems[0])
    return jsonify({"status": "ready", "background": _jobs()})


def _unavailable(reason: str):
    response = jsonify({"status": "unavailable", "reason": reason})
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response
