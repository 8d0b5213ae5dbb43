#!/usr/bin/env python3
"""Refresh latency against table size on PostgreSQL: 1,000 live refresh families, then 1,000,000.

Not a test: it prints figures. The refresh path touches a token by its hash and a family by its id
(both primary keys), so its latency should not grow with the number of live logins.

    scripts/bench --scale [--postgres ADMIN_URL] [--refreshes 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message="CFB has been moved")

import sqlalchemy as sa  # noqa: E402

from bridge.clock import SystemClock  # noqa: E402
from bridge.config import load_settings  # noqa: E402
from bridge.oauth.grants.refresh_token import RefreshTokenGrant  # noqa: E402
from bridge.services import Services, build_services  # noqa: E402
from bridge.store.db import Database  # noqa: E402
from bridge.tokens import refresh as refresh_tokens  # noqa: E402
from bridge.tokens.keys import generate_kek  # noqa: E402
from tests.databases import create_database, drop_database, new_database_name  # noqa: E402

CLAIMS = {"sub": "abcdefghijklmnopqrstuvwxyz234567", "idp": "dev", "ver": 1,
          "email": "alice@example.com", "name": "Alice Andersen", "groups": ["engineering"]}


def fill(database: Database, total: int) -> None:
    """Grow refresh_families and refresh_tokens to ``total`` live rows each, in SQL."""
    with database.engine.begin() as connection:
        have = connection.execute(sa.text("SELECT count(*) FROM refresh_families")).scalar_one()
        if have >= total:
            return
        connection.execute(sa.text(
            "INSERT INTO refresh_families (id, client_id, subject, idp_slug, claims_json, scope, "
            "auth_time, created_at, expires_at, last_used_at) "
            "SELECT md5(random()::text || g::text), 'demo', md5(g::text), 'dev', :claims, "
            "'openid', 0, extract(epoch from now()), extract(epoch from now()) + 86400, "
            "extract(epoch from now()) FROM generate_series(1, :n) AS g"),
            {"claims": json.dumps(CLAIMS), "n": total - have})
        connection.execute(sa.text(
            "INSERT INTO refresh_tokens (token_hash, family_id, created_at) "
            "SELECT encode(sha256(f.id::bytea), 'hex'), f.id, f.created_at FROM refresh_families f "
            "WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)"))
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE refresh_families"))
        connection.execute(sa.text("VACUUM ANALYZE refresh_tokens"))


def measure(bridge: Services, refreshes: int) -> tuple[float, float]:
    """Median and p99 latency (ms) of refreshes chained on one fresh family."""
    client = bridge.settings.client("demo")
    assert client is not None
    with bridge.db.connection() as connection:
        start = refresh_tokens.store_family(connection, refresh_tokens.new_family(
            now=time.time(), client_id="demo", subject=str(CLAIMS["sub"]), idp_slug="dev",
            claims_json=json.dumps(CLAIMS), scope="openid", auth_time=0, session_index=None,
            name_id=None, expires_at=time.time() + 86400))
    token = start.refresh_token
    for _ in range(50):  # warm caches and the connection pool
        token = str(RefreshTokenGrant(bridge).issue(client, {"refresh_token": token}).refresh_token)
    durations = []
    for _ in range(refreshes):
        t0 = time.perf_counter()
        token = str(RefreshTokenGrant(bridge).issue(client, {"refresh_token": token}).refresh_token)
        durations.append((time.perf_counter() - t0) * 1000)
    durations.sort()
    return statistics.median(durations), durations[int(0.99 * len(durations)) - 1]


def _bridge(url: str, work: Path) -> Services:
    Database(url).upgrade()
    settings = load_settings(environ={"BRIDGE_KEY_ENCRYPTION_KEY": generate_kek()}, overrides={
        "database_url": url, "idp_metadata_dir": str(work / "idp"),
        "instance_dir": str(work / "instance"), "background_jobs": False,
        "clients": [{"client_id": "demo", "redirect_uris": ["https://app.example.com/cb"],
                     "audience": "api", "refresh_reuse_interval_seconds": 0}]})
    return build_services(settings, SystemClock())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default="postgresql+psycopg://root@127.0.0.1:5432/postgres",
                        help="admin URL; fresh databases are created and dropped through it")
    parser.add_argument("--refreshes", type=int, default=1000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="bridge-scale-"))
    (work / "idp").mkdir()
    bridges: dict[int, Services] = {}
    try:
        print(f"command: {' '.join(sys.argv)}")
        for size in (args.small, args.large):
            name = new_database_name("bridge_bench")
            url = create_database(args.postgres, name)
            names.append(name)
            bridges[size] = _bridge(url, work)
            t0 = time.perf_counter()
            fill(bridges[size].db, size)
            print(f"{size:>10,} live families: filled in {time.perf_counter() - t0:.0f} s")
        # Rounds alternate between the two databases, so load elsewhere on the machine affects
        # both alike.
        samples: dict[int, list[tuple[float, float]]] = {size: [] for size in bridges}
        per_round = max(1, args.refreshes // args.rounds)
        for _ in range(args.rounds):
            for size, bridge in bridges.items():
                samples[size].append(measure(bridge, per_round))
        summary = {size: (statistics.median(m for m, _ in s), statistics.median(p for _, p in s))
                   for size, s in samples.items()}
        for size, (median, p99) in summary.items():
            print(f"{size:>10,} live families: refresh median {median:.3f} ms, p99 {p99:.3f} ms "
                  f"({args.rounds} alternating rounds of {per_round})")
        small, large = summary[args.small], summary[args.large]
        print(f"{args.large:,} vs {args.small:,}: median {large[0] / small[0]:.2f}×, "
              f"p99 {large[1] / small[1]:.2f}× (target: median within 10%)")
    finally:
        for bridge in bridges.values():
            bridge.db.dispose()
        for name in names:
            drop_database(args.postgres, name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
