#!/usr/bin/env python3
"""gunicorn worker classes side by side: sync workers (each connection closed after one response)
against gthread workers with keep-alive, paired in one run on the same machine.

Both servers run at once, each with its own temporary directory and database, two workers,
the production configuration otherwise; the same load generator (``bench_http.Client``: one
http.client connection per client thread, reused whenever the server keeps it open) drives both.
Rounds alternate which server goes first, so a neighbour's load on the shared cores falls on both;
the figures are medians over the rounds, and the spread is printed beside them.

    scripts/bench --http --compare-workers [--rounds 5] [--seconds 2] [--postgres ADMIN_URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_http import (
    CONTENDERS,
    REPO,
    Bench,
    Chain,
    Meters,
    Server,
    closed_loop,
    fresh_database,
    get_healthz,
    one_thread,
    open_loop,
    paired_table,
    post_acs,
    post_code,
    print_paired_header,
    setup,
    tear_down,
)

CONFIGURATIONS: dict[str, dict[str, str]] = {
    "sync": {"BRIDGE_WORKER_CLASS": "sync", "BRIDGE_THREADS": "1"},
    "gthread": {"BRIDGE_WORKER_CLASS": "gthread", "BRIDGE_THREADS": "4", "BRIDGE_KEEPALIVE": "75"},
}
OPEN_LOOP_RATE = 200  # refreshes per second, the same for both: well below either peak
FAMILIES = 24  # refresh families for the open loop (one refresh in flight per family)
MEASURES = ("healthz µs", "refresh µs", "refresh/healthz", f"refresh/s ({CONTENDERS} clients)",
            f"healthz/s ({CONTENDERS} clients)", f"open loop {OPEN_LOOP_RATE}/s p50 ms",
            f"open loop {OPEN_LOOP_RATE}/s p99 ms", "open loop µs")


@dataclass
class Contender:
    name: str
    server: Server
    bench: Bench
    meters: Meters
    chains: list[Chain]
    families: list[str]
    rounds: list[dict[str, float]] = field(default_factory=list)


def prepare(name: str, workdir: Path, database_url: str) -> Contender:
    server, idp = setup(workdir, database_url, CONFIGURATIONS[name])
    bench = Bench(server, idp)
    logins = [bench.prepare() for _ in range(CONTENDERS + 1 + FAMILIES)]
    tokens = [post_code(bench.client, post_acs(bench.client, p), p.verifier) for p in logins]
    return Contender(name, server, bench, Meters(server, None),
                     [Chain(t) for t in tokens[:CONTENDERS + 1]], tokens[CONTENDERS + 1:])


def measure_round(c: Contender, seconds: float) -> dict[str, float]:
    port = c.server.port
    healthz = one_thread(c.meters, port, seconds, get_healthz)
    refresh = one_thread(c.meters, port, seconds, c.chains[0])
    refresh_peak = closed_loop(c.meters, port, seconds, list(c.chains[1:]))
    healthz_peak = closed_loop(c.meters, port, seconds, [get_healthz] * CONTENDERS)
    # Open loop: a new connection per request (as from clients without a proxy), at a fixed rate.
    paced, info = open_loop(c.meters, port, c.families, OPEN_LOOP_RATE, seconds)
    if info["errors"]:
        raise SystemExit(f"{c.name}: open loop errors {info['errors']}")
    return {MEASURES[5]: paced.pct(50), MEASURES[6]: paced.pct(99), MEASURES[7]: paced.cpu_us,
            MEASURES[0]: healthz.cpu_us, MEASURES[1]: refresh.cpu_us,
            MEASURES[2]: refresh.cpu_us / healthz.cpu_us, MEASURES[3]: refresh_peak.per_second,
            MEASURES[4]: healthz_peak.per_second}


def summary(contenders: list[Contender]) -> str:
    sync, gthread = contenders
    return paired_table(MEASURES, ("sync", sync.rounds), ("gthread", gthread.rounds),
                        "gthread ÷ sync", "µs: server CPU per request (utime+stime of the two "
                        "workers ÷ requests, one client)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench --http --compare-workers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="seconds per measurement; a round is 4 per server (default 2)")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="one fresh PostgreSQL database per server, created through this URL "
                             "and dropped at the end (default: SQLite files)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    started = time.perf_counter()
    print_paired_header(f"scripts/bench --http --compare-workers {' '.join(argv)}", args.postgres,
                        "server")
    with open("/proc/loadavg") as loadavg:
        print(f"{'load:':<11}{loadavg.read().strip()} (before)")
    tmp = tempfile.mkdtemp(prefix="bridge-bench-workers-")
    contenders: list[Contender] = []
    databases: list[str] = []
    try:
        for name in CONFIGURATIONS:
            workdir = Path(tmp) / name
            workdir.mkdir()
            contenders.append(prepare(name, workdir,
                                      fresh_database(workdir, args.postgres, databases)))
        for c in contenders:  # warm-up: keys loaded, first connections made
            measure_round(c, min(args.seconds, 1.0))
        for index in range(args.rounds):
            order = contenders if index % 2 == 0 else contenders[::-1]
            for c in order:
                c.rounds.append(measure_round(c, args.seconds))
            print(f"round {index + 1}: " + "; ".join(
                f"{c.name} healthz {c.rounds[-1][MEASURES[0]]:,.0f} µs, refresh "
                f"{c.rounds[-1][MEASURES[1]]:,.0f} µs" for c in contenders), flush=True)
        print()
        print(summary(contenders))
        with open("/proc/loadavg") as loadavg:
            print(f"load after: {loadavg.read().strip()}")
        print(f"total run time: {time.perf_counter() - started:.1f} s")
    finally:
        tear_down([c.server for c in contenders], args.postgres, databases, tmp)


if __name__ == "__main__":
    main(sys.argv[1:])
