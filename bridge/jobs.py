"""Background work, off the request path and safe with any number of nodes: each job runs where it
holds a lease in the database (a row per job, taken with one conditional UPDATE), so on many nodes
it still runs once per interval; when its holder dies the lease simply expires.

Jobs: purging expired rows (bounded batches), refreshing IdP metadata URLs that are due,
rotating token signing keys older than ``key_rotation_days``, and publishing a successor to the SP
signing key (``sp_signing_key_rotation_days``, or when its certificate nears its expiry).
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
from sqlalchemy import update

from bridge.errors import BridgeError
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


def record(db: Database, name: str, *, now: float, result: str) -> None:
    with db.transaction() as session:
        lease = session.get(JobLease, name)
        if lease is not None:
            lease.last_run_at, lease.last_result = now, result[:2000]


def run_due(db: Database, jobs: list[Job], now: float) -> dict[str, str]:
    """Run every job whose lease this process gets; a failing job does not stop the others."""
    results = {}
    for job in jobs:
        if not acquire(db, job.name, now=now, interval=job.interval):
            continue
        try:
            outcome = str(job.run())
        except (BridgeError, sa_exc.SQLAlchemyError, OSError) as error:
            outcome = f"failed: {error}"
            log.warning("background job %s failed: %s", job.name, error)
        results[job.name] = outcome
        with contextlib.suppress(BridgeError, sa_exc.SQLAlchemyError):
            record(db, job.name, now=now, result=outcome)
    return results


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

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                run_due(self.db, self.jobs, self.clock())
            except (BridgeError, sa_exc.SQLAlchemyError) as error:  # the database is down
                log.warning("background jobs skipped: %s", error)
