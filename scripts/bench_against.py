#!/usr/bin/env python3
"""This checkout against another commit, both served at once and measured in turns: the refresh
ratio and a login's server CPU of each, and how this checkout's compare with the commit's.

A ratio measured today is not comparable with one committed from another day: on a shared
machine the same code moves by 10 % between runs minutes apart. Measured in turns, the machine's
state falls on both alike. Each side runs under gunicorn with the production configuration, two
workers, a database of its own; the load generator and the development IdP are this checkout's.
The other commit's tree is taken with ``git archive`` and run with this checkout's .venv (a
commit whose dependencies differ may not start).

    scripts/bench --http --against REF [--rounds 6] [--seconds 4] [--logins 100] [--check]
                                       [--postgres ADMIN_URL]

With ``--check``, exits 1 when this checkout is more than 15 % worse than REF (the median of the
per-round quotients) on the refresh ratio or on a login's server CPU.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_check import TOLERANCE
from bench_http import (
    ALTERNATIONS,
    REPO,
    Bench,
    Chain,
    Meters,
    Server,
    alternating,
    fresh_database,
    get_healthz,
    paired_table,
    per_round_quotients,
    post_acs,
    post_code,
    print_paired_header,
    run_logins,
    setup,
    tear_down,
)

MEASURES = ("healthz µs", "refresh µs", "refresh ÷ healthz", "login µs")
CHECKED = ("refresh ÷ healthz", "login µs")  # lower is better for every measure


@dataclass
class Side:
    name: str
    server: Server
    bench: Bench
    meters: Meters
    chain: Chain
    rounds: list[dict[str, float]] = field(default_factory=list)


def _git(*args: str) -> bytes:
    """``git <args>`` in this checkout; its output."""
    return subprocess.run(["git", "-C", str(REPO), *args],  # noqa: S603, S607 - our own repository
                          capture_output=True, check=True).stdout


def export(ref: str, into: Path) -> str:
    """The tree of commit ``ref`` written under ``into``; its full hash. SystemExit when ``ref``
    names no commit."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", "--end-of-options",
                      f"{ref}^{{commit}}").decode().strip()
    except subprocess.CalledProcessError:
        raise SystemExit(f"--against {ref}: no such commit in {REPO}") from None
    with tarfile.open(fileobj=io.BytesIO(_git("archive", "--format=tar", commit))) as tar:
        tar.extractall(into, filter="data")
    return commit


def prepare(name: str, workdir: Path, database_url: str, code: Path) -> Side:
    server, idp = setup(workdir, database_url, code=code)
    bench = Bench(server, idp)
    first = bench.prepare()
    chain = Chain(post_code(bench.client, post_acs(bench.client, first), first.verifier))
    return Side(name, server, bench, Meters(server, None), chain)


def measure_round(side: Side, seconds: float, logins: int) -> dict[str, float]:
    refresh, healthz = alternating(side.meters, side.server.port, seconds,
                                   [side.chain, get_healthz], rounds=ALTERNATIONS)
    login = run_logins(side.bench, side.meters, logins, logins)[0]  # signed beforehand, untimed
    return {MEASURES[0]: healthz.cpu_us, MEASURES[1]: refresh.cpu_us,
            MEASURES[2]: refresh.cpu_us / healthz.cpu_us, MEASURES[3]: login.cpu_us}


def quotients(ref: Side, this: Side) -> dict[str, float]:
    """Each measure's median over the rounds of this checkout's figure ÷ REF's in the same round."""
    return per_round_quotients(MEASURES, ref.rounds, this.rounds)


def regressions(paired: dict[str, float], tolerance: float = TOLERANCE) -> list[str]:
    """The checked measures on which this checkout is more than ``tolerance`` worse than REF."""
    return [m for m in CHECKED if paired[m] > 1 + tolerance]


def summary(ref: Side, this: Side) -> str:
    return paired_table(MEASURES, (ref.name, ref.rounds), (this.name, this.rounds), "this ÷ REF",
                        "µs: server CPU per request or login (utime+stime of the two workers)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench --http --against",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", metavar="REF", help="the commit to measure against (a hash, tag, "
                                                   "branch, HEAD~3...)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds in turns (default 6)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="seconds of refreshes and as many of /healthz per side and round, "
                             "in turns (default 4)")
    parser.add_argument("--logins", type=int, default=100,
                        help="logins per side and round (default 100: the workers' CPU is read "
                             "in 10 ms ticks, and 100 logins are about 40 of them)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when this checkout is more than {TOLERANCE:.0%} worse "
                             f"than REF on {' or '.join(CHECKED)}")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="one fresh PostgreSQL database per side, created through this URL "
                             "and dropped at the end (default: SQLite files)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.logins < 1:
        parser.error("--rounds and --logins must be at least 1, --seconds positive")
    if args.check and args.logins < 50:
        parser.error("--check needs --logins 50 or more: the workers' CPU is read in 10 ms ticks, "
                     "and fewer logins are too few of them to judge")
    sys.path.insert(0, str(REPO))
    started = time.perf_counter()
    print_paired_header(f"scripts/bench --http --against {' '.join(argv)}", args.postgres, "side")
    tmp = Path(tempfile.mkdtemp(prefix="bridge-bench-against-"))
    sides: list[Side] = []
    databases: list[str] = []
    try:
        tree = tmp / "ref-tree"
        commit = export(args.ref, tree)
        dirty = _git("status", "--porcelain").strip()
        head = _git("rev-parse", "--short", "HEAD").decode().strip()
        print(f"{'REF:':<11}{args.ref} ({commit[:12]})")
        print(f"{'this:':<11}{REPO} (HEAD {head}{', with uncommitted changes' if dirty else ''})")
        for name, code in ((f"REF {commit[:9]}", tree), ("this checkout", REPO)):
            workdir = tmp / ("ref" if code == tree else "this")
            workdir.mkdir()
            sides.append(prepare(name, workdir, fresh_database(workdir, args.postgres, databases),
                                 code))
        for side in sides:  # warm-up: keys loaded, connections made, code paths run once
            measure_round(side, min(args.seconds, 1.0), min(args.logins, 5))
        for index in range(args.rounds):
            for side in (sides if index % 2 == 0 else sides[::-1]):
                side.rounds.append(measure_round(side, args.seconds, args.logins))
            print(f"round {index + 1}: " + "; ".join(
                f"{s.name}: refresh ÷ healthz {s.rounds[-1][MEASURES[2]]:.2f}, login "
                f"{s.rounds[-1][MEASURES[3]]:,.0f} µs" for s in sides), flush=True)
        print()
        print(summary(*sides))
        print(f"total run time: {time.perf_counter() - started:.1f} s")
        if not args.check:
            return 0
        failed = regressions(quotients(*sides))
        print(f"check (this checkout at most {TOLERANCE:.0%} worse than REF on "
              f"{' and '.join(CHECKED)}): {'FAILED: ' + ', '.join(failed) if failed else 'passed'}")
        return 1 if failed else 0
    finally:
        tear_down([side.server for side in sides], args.postgres, databases, tmp)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
