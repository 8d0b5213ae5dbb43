"""Prometheus metrics. Counters are fed from the audit trail's single entry point (every login,
token and refusal passes there) and from token minting; gauges are read at scrape time.

Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory so every worker's counts
add up (prometheus_client's multiprocess mode; bridge/gunicorn_conf.py cleans up after workers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric

LOGINS = Counter("bridge_logins_total", "SAML logins by IdP, result and error code",
                 ["idp", "result", "code"])
TOKENS = Counter("bridge_tokens_issued_total", "Access tokens issued by client and grant",
                 ["client", "grant"])
REUSE = Counter("bridge_refresh_reuse_detected_total",
                "Refresh tokens presented again after rotation (their family was revoked)")
REFUSALS = Counter("bridge_refusals_total", "Refused requests by event and error code",
                   ["event", "code"])
JOB_RUNS = Counter("bridge_background_job_runs_total",
                   "Background job runs in this process by job and result (success, failure)",
                   ["job", "result"])
LATENCY = Histogram("bridge_request_duration_seconds", "Request latency by endpoint and status",
                    ["method", "endpoint", "status"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def observe_event(event: str, outcome: str, code: str | None, idp: str | None,
                  client: str | None) -> None:
    if event == "login":
        LOGINS.labels(idp or "-", outcome, code or "").inc()
    if outcome == "refused":
        REFUSALS.labels(event, code or "").inc()
        if code == "refresh_token_reused":
            REUSE.inc()


def token_issued(client: str, grant: str) -> None:
    # Each (client, grant) series once: labels() checks and converts its values on every call.
    series = _TOKENS_SERIES.get((client, grant))
    if series is None:
        series = _TOKENS_SERIES.setdefault((client, grant), TOKENS.labels(client, grant))
    series.inc()


# The series of TOKENS by (client, grant); as many as TOKENS itself keeps.
_TOKENS_SERIES: dict[tuple[str, str], Any] = {}


def job_ran(job: str, *, failed: bool) -> None:
    JOB_RUNS.labels(job, "failure" if failed else "success").inc()


class ScrapeTimeGauges:
    """Gauges computed when Prometheus scrapes: certificate days left per IdP and of our own SAML
    keys, database pool."""

    def __init__(self, certificates: Callable[[], Iterable[tuple[str, float]]],
                 pool: Callable[[], dict[str, float]],
                 sp_certificates: Callable[[], Iterable[tuple[str, str, str, float]]] = tuple,
                 ) -> None:
        self.certificates = certificates
        self.pool = pool
        self.sp_certificates = sp_certificates

    def collect(self) -> Iterable[Metric]:
        days = GaugeMetricFamily("bridge_idp_certificate_days_left",
                                 "Days until the IdP's latest-expiring signing certificate expires",
                                 labels=["idp"])
        for slug, left in self.certificates():
            days.add_metric([slug], left)
        yield days
        ours = GaugeMetricFamily("bridge_sp_certificate_days_left",
                                 "Days until each published SP certificate expires, by use "
                                 "(signing, encryption) and state (active, next, retired)",
                                 labels=["use", "state", "key"])
        for use, state, key, left in self.sp_certificates():
            ours.add_metric([use, state, key], left)
        yield ours
        pool = GaugeMetricFamily("bridge_db_pool_connections", "Database connection pool",
                                 labels=["state"])
        for state, value in self.pool().items():
            pool.add_metric([state], value)
        yield pool


def exposition(extra: ScrapeTimeGauges | None) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    if extra is not None:
        scrape = CollectorRegistry()
        scrape.register(extra)
        output += generate_latest(scrape)
    return output
