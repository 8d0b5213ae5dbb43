"""Background work, off the request path and safe with any number of nodes: each job runs where it
holds a lease in the database (a row per job, taken with one conditional UPDATE), so on many nodes
it still runs once per interval; when its holder dies the lease simply expires.

Jobs: purging expired rows (bounded batches), refreshing IdP metadata URLs that are due,
rotating token signing keys older than ``key_rotation_days``, and publishing a successor to the SP
signing key (``sp_signing_key_rotation_days``, or when its certificate nears its expiry).

Each job is isolated: whatever it raises is logged (with the traceback when unexpected), counted in
``bridge_background_job_runs_total{result="failure"}`` and recorded on its lease row (last error,
failures in a row), and the other jobs and the loop go on. ``status`` reads those rows for
``/readyz`` and ``bridge jobs status``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update

from bridge import metrics
from bridge.errors import BridgeError
from bridge.logs import redact
from bridge.store.db import Database
from bridge.store.models import JobLease

log = logging.getLogger("bridge.jobs")
HOLDER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Job:
    name: str
    interval: float
    run: Callable[[], object]


def acquire(db: Database, name: str, *, now: float, interval: float, holder: str = HOLDER) -> bool:
    """Take the lease of ``name`` if it is free (expired); hold it for ``interval`` seconds."""
    try:
        with db.transaction() as session:
            taken = session.execute(
                update(JobLease)
                .where(JobLease.name == name, JobLease.expires_at <= now)
                .values(holder=holder, expires_at=now + interval))
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return True
            if session.get(JobLease, name) is not None:
                return False
            session.add(JobLease(name=name, holder=holder, expires_at=now + interval))
        return True
    except sa_exc.IntegrityError:
        return False  # another node created the row first: it holds the lease


def record(db: Database, name: str, *, now: float, result: str, failed: bool = False) -> None:
    with db.transaction() as session:
        lease = session.get(JobLease, name)
        if lease is None:
            return
        # Shown by `bridge jobs status`: masked like a log line, then cut (cut first, a secret
        # split at the cut would no longer look like one and be kept in part).
        result = redact(result)[:2000]
        lease.last_run_at, lease.last_result = now, result
        if failed:
            lease.last_failure_at, lease.last_error = now, result
            lease.consecutive_failures = (lease.consecutive_failures or 0) + 1
        else:
            lease.last_success_at, lease.consecutive_failures = now, 0


def run_due(db: Database, jobs: list[Job], now: float) -> dict[str, str]:
    """Run every job whose lease this process gets; a failing job does not stop the others."""
    results = {}
    for job in jobs:
        if not acquire(db, job.name, now=now, interval=job.interval):
            continue
        failed = True
        try:
            outcome = str(job.run())
            failed = False
        except (BridgeError, sa_exc.SQLAlchemyError, OSError) as error:
            # Expected failures (an IdP's URL not answering, the database away): the message says
            # what happened.
            outcome = f"failed: {error}"
            log.warning("background job %s failed: %s", job.name, error)
        except Exception as error:  # noqa: BLE001 - a bug in one job must not stop the others
            outcome = f"failed: {type(error).__name__}: {error}"
            log.exception("background job %s failed unexpectedly", job.name,
                          extra={"job": job.name})
        metrics.job_ran(job.name, failed=failed)
        results[job.name] = outcome
        with contextlib.suppress(BridgeError, sa_exc.SQLAlchemyError):
            record(db, job.name, now=now, result=outcome, failed=failed)
    return results


@dataclass(frozen=True)
class JobStatus:
    name: str
    holder: str
    next_due_at: float  # when the lease expires and any node may run the job again
    last_run_at: float | None
    last_success_at: float | None
    last_failure_at: float | None
    consecutive_failures: int
    last_error: str | None

    @property
    def state(self) -> str:
        if self.last_run_at is None:
            return "not_run"
        return "failing" if self.consecutive_failures else "ok"


def status(db: Database) -> list[JobStatus]:
    """Every job that has run on any node, from its lease row."""
    with db.transaction() as session:
        return [JobStatus(name=row.name, holder=row.holder, next_due_at=row.expires_at,
                          last_run_at=row.last_run_at, last_success_at=row.last_success_at,
                          last_failure_at=row.last_failure_at,
                          consecutive_failures=row.consecutive_failures or 0,
                          last_error=row.last_error if row.consecutive_failures else None)
                for row in session.scalars(select(JobLease).order_by(JobLease.name))]


class Scheduler:
    """A daemon thread per process that wakes up every ``tick`` seconds and runs what is due."""

    def __init__(self, db: Database, jobs: list[Job], clock: Callable[[], float], *,
                 tick: float = 30.0) -> None:
        self.db, self.jobs, self.clock, self.tick = db, jobs, clock, tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bridge-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                run_due(self.db, self.jobs, self.clock())
            except (BridgeError, sa_exc.SQLAlchemyError) as error:  # the database is down
                log.warning("background jobs skipped: %s", error)
            except Exception:  # noqa: BLE001 - the loop outlives any error; next tick retries
                log.exception("background jobs skipped")
