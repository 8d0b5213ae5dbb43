#!/usr/bin/env python3
"""Ending one person's logins against the size of the authorization-code table.

Not a test: it prints figures. Codes stay an hour past expiry (``store/maintenance.py``), so the
table holds an hour of logins. Ending a person's logins (Single Logout, deprovisioning, an admin's
revocation) spends their unexchanged codes; ``oauth/codes.py: spend_codes`` looks only at codes
that could still be exchanged. The baseline, in the same run and alternating with it, is the same
``UPDATE`` without that bound, which reads every code of the hour.

    scripts/bench --ending [--postgres ADMIN_URL] [--codes 200000] [--live 3300] [--rounds 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message="CFB has been moved")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bridge.oauth.codes import spend_codes  # noqa: E402
from bridge.store.db import Database  # noqa: E402
from bridge.store.models import AuthorizationCode  # noqa: E402
from tests.databases import create_database, drop_database, new_database_name  # noqa: E402

PEOPLE = 5000


def fill(database: Database, *, total: int, live: int, now: float) -> None:
    """``total`` codes of ``PEOPLE`` people over the last hour, ``live`` of them unexpired; half
    of the expired ones were exchanged."""
    rows = []
    for i in range(total):
        expired = i >= live
        rows.append({
            "code_hash": uuid.uuid4().hex * 2, "client_id": "demo", "redirect_uri": "https://rp/cb",
            "code_challenge": None, "scope": "openid", "nonce": None,
            "subject": f"person-{i % PEOPLE}", "idp_slug": "dev", "claims_json": "{}",
            "auth_time": int(now), "session_index": f"s-{i}", "session_not_on_or_after": None,
            "name_id": f"n-{i}", "created_at": now - 60,
            "expires_at": now - 1 - i * 3600 / total if expired else now + 60,
            "used_at": now - 100 if expired and i % 2 else None})
    with database.engine.begin() as connection:
        for start in range(0, total, 5000):
            connection.execute(sa.insert(AuthorizationCode), rows[start:start + 5000])
    if database.dialect == "postgresql":
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("ANALYZE authorization_codes"))


def unbounded(session: Session, *conditions: sa.ColumnElement[bool], now: float) -> None:
    session.execute(sa.update(AuthorizationCode)
                    .where(AuthorizationCode.used_at.is_(None), *conditions)
                    .values(used_at=now))


def timed(database: Database, spend: Callable[..., None], person: str, now: float) -> float:
    t0 = time.perf_counter()
    with database.transaction() as session:
        spend(session, AuthorizationCode.idp_slug == "dev", AuthorizationCode.subject == person,
              now=now)
    return (time.perf_counter() - t0) * 1000


def measure(database: Database, args: argparse.Namespace) -> None:
    now = time.time()
    t0 = time.perf_counter()
    fill(database, total=args.codes, live=args.live, now=now)
    print(f"{database.dialect}: {args.codes:,} codes ({args.live:,} unexpired) filled in "
          f"{time.perf_counter() - t0:.0f} s")
    without, with_bound = [], []
    for r in range(args.rounds):  # alternating, each spending a person not spent before
        without.append(timed(database, unbounded, f"person-{2 * r}", now))
        with_bound.append(timed(database, spend_codes, f"person-{2 * r + 1}", now))
    a, b = statistics.median(without), statistics.median(with_bound)
    print(f"{database.dialect}: spending one person's codes: without the bound {a:.2f} ms "
          f"({min(without):.2f}-{max(without):.2f}), spend_codes {b:.2f} ms "
          f"({min(with_bound):.2f}-{max(with_bound):.2f}); {b / a:.2f}× "
          f"(medians of {args.rounds} alternating pairs, wall time per transaction)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default="postgresql+psycopg://root@127.0.0.1:5432/postgres",
                        help="admin URL; a fresh database is created and dropped through it")
    parser.add_argument("--codes", type=int, default=200_000)
    parser.add_argument("--live", type=int, default=3_300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    work = Path(tempfile.mkdtemp(prefix="bridge-ending-"))
    name = new_database_name("bridge_bench")
    try:
        for url in (f"sqlite:///{work / 'bridge.db'}", create_database(args.postgres, name)):
            database = Database(url)
            try:
                database.upgrade()
                measure(database, args)
            finally:
                database.dispose()
    finally:
        drop_database(args.postgres, name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
