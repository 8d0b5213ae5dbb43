"""Background jobs: leased so each runs once across nodes, off the request path."""

from __future__ import annotations

import multiprocessing
import time

from bridge.background import standard_jobs
from bridge.federation import Bridge
from bridge.jobs import Job, acquire, run_due
from bridge.store.models import AuthnRequestRecord, JobLease
from bridge.web import create_app


def test_a_lease_is_held_by_one_holder_until_it_expires(bridge: Bridge) -> None:
    db, now = bridge.db, time.time()
    assert acquire(db, "j", now=now, interval=60, holder="node-a")
    assert not acquire(db, "j", now=now + 1, interval=60, holder="node-b")
    assert not acquire(db, "j", now=now + 59, interval=60, holder="node-a")
    assert acquire(db, "j", now=now + 61, interval=60, holder="node-b")  # the holder died
    with db.transaction() as session:
        assert session.get(JobLease, "j").holder == "node-b"


def _race(url: str, now: float) -> bool:
    from bridge.store.db import Database

    database = Database(url)
    try:
        holder = f"p{multiprocessing.current_process().pid}"
        return acquire(database, "race", now=now, interval=60, holder=holder)
    finally:
        database.dispose()


def test_many_processes_one_winner(bridge: Bridge) -> None:
    now = time.time()
    if bridge.db.dialect == "postgresql":
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            results = pool.starmap(_race, [(bridge.db.url, now)] * 6)
    else:
        results = [_race(bridge.db.url, now) for _ in range(6)]
    assert results.count(True) == 1


def test_jobs_run_once_per_interval_and_failures_are_recorded(bridge: Bridge) -> None:
    runs: list[str] = []

    def boom() -> None:
        raise OSError("disk full")

    jobs = [Job("count", 300, lambda: runs.append("x") or "ok"), Job("boom", 300, boom)]
    now = time.time()
    assert run_due(bridge.db, jobs, now) == {"count": "ok", "boom": "failed: disk full"}
    assert run_due(bridge.db, jobs, now + 10) == {}  # another node, or this one again: not due
    assert run_due(bridge.db, jobs, now + 301) == {"count": "ok", "boom": "failed: disk full"}
    assert runs == ["x", "x"]
    with bridge.db.transaction() as session:
        assert session.get(JobLease, "boom").last_result == "failed: disk full"


def test_the_standard_jobs_purge_refresh_and_rotate(bridge: Bridge) -> None:
    app = create_app(bridge=bridge)
    jobs = standard_jobs(bridge, app.extensions["admin"].idps)
    assert [j.name for j in jobs] == ["purge_expired", "metadata_refresh", "key_rotation",
                                      "sp_signing_key_rotation"]
    now = time.time()
    with bridge.db.transaction() as session:
        session.add(AuthnRequestRecord(id="old", idp_slug="dev", client_id="demo",
                                       redirect_uri="x", scope="", browser_hash="h",
                                       created_at=now - 7200, expires_at=now - 3600))
    results = run_due(bridge.db, jobs, now)
    assert "'authn_requests': 1" in results["purge_expired"]
    assert results["metadata_refresh"] == "{}"
    assert results["key_rotation"] == "[]"  # keys are young
    assert results["sp_signing_key_rotation"] == "not due"
