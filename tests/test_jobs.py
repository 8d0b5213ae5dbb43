"""Background jobs: leased so each runs once across nodes, off the request path."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time

import pytest
from prometheus_client import REGISTRY

from bridge.config import Settings
from bridge.jobs.leases import Job, Scheduler, acquire, run_due
from bridge.jobs.standard import standard_jobs
from bridge.services import Services
from bridge.store.models import AuthnRequestRecord, JobLease
from bridge.web import create_app


def test_a_lease_is_held_by_one_holder_until_it_expires(bridge: Services) -> None:
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


@pytest.mark.slow  # starts processes
def test_many_processes_one_winner(bridge: Services) -> None:
    now = time.time()
    if bridge.db.dialect == "postgresql":
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            results = pool.starmap(_race, [(bridge.db.url, now)] * 6)
    else:
        results = [_race(bridge.db.url, now) for _ in range(6)]
    assert results.count(True) == 1


def test_jobs_run_once_per_interval_and_failures_are_recorded(bridge: Services) -> None:
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


def test_a_recorded_result_is_masked_before_it_is_cut(bridge: Services) -> None:
    """A secret that straddles the cut at 2,000 characters is masked whole, not kept in part."""
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9." + "s" * 40

    def leaky() -> str:
        # "failed: " and the words put the cut 27 characters into the token: its header and
        # the start of its claims, too short a piece to look like a token any more.
        raise OSError("x " * 982 + jwt)

    run_due(bridge.db, [Job("leaky", 300, leaky)], time.time())
    with bridge.db.transaction() as session:
        stored = session.get(JobLease, "leaky").last_result
    assert "eyJhbGci" not in stored and "eyJzdWIi" not in stored
    assert stored.endswith(("[jwt]", "[redacted]")) and len(stored) <= 2000


def test_the_standard_jobs_purge_refresh_and_rotate(bridge: Services) -> None:
    app = create_app(services=bridge)
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


def _runs(job: str, result: str) -> float:
    return REGISTRY.get_sample_value("bridge_background_job_runs_total",
                                     {"job": job, "result": result}) or 0.0


@pytest.mark.slow  # starts a process
def test_a_job_raising_an_unexpected_exception_stops_neither_the_others_nor_the_loop(
        bridge: Services, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise KeyError("an IdP the registry skipped")

    def healthy() -> str:
        ran.append("healthy")
        return "ok"

    before = _runs("broken", "failure"), _runs("healthy", "success")
    # A real scheduler thread, ticking fast; each job is due again 0.1 s after it ran.
    scheduler = Scheduler(bridge.db, [Job("broken", 0.1, broken), Job("healthy", 0.1, healthy)],
                          time.time, tick=0.02)
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while (ran.count("broken") < 3 or ran.count("healthy") < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ran.count("broken") >= 3 and ran.count("healthy") >= 3, ran
        assert scheduler.running  # the loop survived every failure
    finally:
        scheduler.stop()

    assert _runs("broken", "failure") - before[0] >= 3
    assert _runs("healthy", "success") - before[1] >= 3
    failures = [r for r in caplog.records if r.name == "bridge.jobs" and r.exc_info]
    assert failures and failures[0].exc_info[0] is KeyError  # logged with its traceback

    # /readyz: still ready (a failed job does not drain the node), the failure in its details.
    app = create_app(services=bridge)
    app.extensions["scheduler"] = scheduler
    body = app.test_client().get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["background"]["jobs"]["broken"]["status"] == "failing"
    assert body["background"]["jobs"]["broken"]["consecutive_failures"] >= 3
    assert body["background"]["jobs"]["healthy"]["status"] == "ok"
    assert "KeyError" not in json.dumps(body)  # the error itself is for operators, not probes

    # `bridge jobs status`: every job, the failing one with its error; exit status 1.
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "jobs", "status"],
        capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "BRIDGE_DATABASE_URL": bridge.db.url,
             "BRIDGE_IDP_METADATA_DIR": settings.idp_metadata_dir,
             "BRIDGE_INSTANCE_DIR": settings.instance_dir})
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("broken: failing") for line in lines), result.stdout
    assert any(line.startswith("healthy: ok") for line in lines), result.stdout
    assert "KeyError: 'an IdP the registry skipped'" in result.stdout


@pytest.mark.slow  # starts a process
def test_jobs_status_when_all_is_well(bridge: Services, settings: Settings) -> None:
    run_due(bridge.db, [Job("fine", 300, lambda: "ok")], time.time())
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "jobs", "status"],
        capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "BRIDGE_DATABASE_URL": bridge.db.url,
             "BRIDGE_IDP_METADATA_DIR": settings.idp_metadata_dir,
             "BRIDGE_INSTANCE_DIR": settings.instance_dir})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fine: ok")
