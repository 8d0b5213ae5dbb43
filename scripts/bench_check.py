#!/usr/bin/env python3
"""``scripts/bench --check``: measure the headline ratios and compare them with the figures
committed in docs/performance.md; exit 1 when one regressed by more than the tolerance (15 %).

For a person before a release, not for CI: the figures come from a shared 2-core machine and
differ by 10–15 % between runs, so a failure means "measure again, then look".

The committed figures are the table under the heading ``## Committed figures`` in
docs/performance.md: one row per ratio, its stable name in backticks in the first column, then
the SQLite and the PostgreSQL figure (``—`` when not committed) and whether ``lower`` or
``higher`` is better.

    scripts/bench --check              # three runs, medians compared
    scripts/bench --check --runs 5
    scripts/bench --check --postgres postgresql+psycopg://root@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "performance.md"
HEADING = "## Committed figures"
DATABASES = ("sqlite", "postgresql")
TOLERANCE = 0.15


@dataclass(frozen=True)
class Committed:
    name: str
    figures: dict[str, float]  # by database; a database without a committed figure is absent
    better: str  # "lower" or "higher"


@dataclass(frozen=True)
class Verdict:
    name: str
    committed: float
    measured: float
    better: str
    tolerance: float = TOLERANCE

    @property
    def regressed(self) -> bool:
        return self.change > self.tolerance

    @property
    def change(self) -> float:
        """How much worse (positive) or better (negative) than committed, as a fraction."""
        if self.better == "lower":
            return self.measured / self.committed - 1
        return self.committed / self.measured - 1 if self.measured else float("inf")

    def line(self) -> str:
        word = "REGRESSED" if self.regressed else "ok"
        return (f"{self.name:<32} committed {self.committed:>7.2f}  measured {self.measured:>7.2f}"
                f"  ({self.better} is better; {self.change:+.0%})  {word}")


def _number(cell: str) -> float | None:
    text = cell.strip().strip("*").rstrip("×").strip()
    if text in ("", "—", "-"):
        return None
    return float(text)


def parse_committed(markdown: str) -> dict[str, Committed]:
    """The rows of the committed-figures table. Raises ValueError when the table is missing or
    a row cannot be read, so a doc edit cannot quietly disable the check."""
    _, found, rest = markdown.partition("\n" + HEADING)
    if not found:
        raise ValueError(f"no '{HEADING}' section")
    rows = [line for line in rest.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    if len(rows) < 3:
        raise ValueError(f"no table under '{HEADING}'")
    header = [c.strip().lower() for c in rows[0].strip("|").split("|")]
    expected = ["ratio", *DATABASES, "better"]
    if header[:len(expected)] != expected:
        raise ValueError(f"the table's columns must start {expected}, not {header}")
    committed: dict[str, Committed] = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([a-z0-9-]+)`", cells[0])
        if name is None or len(cells) < len(expected):
            raise ValueError(f"unreadable row: {line}")
        better = cells[len(expected) - 1]
        if better not in ("lower", "higher"):
            raise ValueError(f"{name.group(1)}: 'better' must be lower or higher, not {better!r}")
        figures = {db: value for db, cell in zip(DATABASES, cells[1:], strict=False)
                   if (value := _number(cell)) is not None}
        committed[name.group(1)] = Committed(name.group(1), figures, better)
    return committed


def compare(committed: dict[str, Committed], measured: dict[str, float], database: str,
            tolerance: float = TOLERANCE) -> list[Verdict]:
    """One verdict per ratio committed for ``database``; a committed ratio that was not measured
    is an error (the benchmark and the doc went apart)."""
    verdicts = []
    for name, entry in committed.items():
        if database not in entry.figures:
            continue
        if name not in measured:
            raise ValueError(f"{name} is committed for {database} but was not measured")
        verdicts.append(Verdict(name, entry.figures[database], measured[name], entry.better,
                                tolerance))
    return verdicts


def median_ratios(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each ratio's median over the runs that measured it."""
    names = {name for run in runs for name in run}
    return {name: statistics.median(run[name] for run in runs if name in run)
            for name in sorted(names)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench --check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="measure on PostgreSQL (a fresh database there) instead of SQLite")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of scripts/bench --http; each ratio's median is compared "
                             "(default 3: one run on a shared machine is too noisy to judge)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    database = "postgresql" if args.postgres else "sqlite"
    committed = parse_committed(DOC.read_text())
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bridge-bench-check-") as tmp:
        out = Path(tmp) / "ratios.json"
        command = [sys.executable, str(REPO / "scripts" / "bench_http.py"), "--ratios-json", str(out)]
        if args.postgres:
            command += ["--postgres", args.postgres]
        for index in range(args.runs):
            print(f"--- run {index + 1} of {args.runs}", flush=True)
            subprocess.run(command, check=True)  # noqa: S603 - our own script
            runs.append(json.loads(out.read_text()))
    measured = median_ratios(runs)
    print("\nratios per run: " + "; ".join(
        f"{name} {', '.join(f'{run[name]:.2f}' for run in runs)}" for name in measured))
    verdicts = compare(committed, measured, database)
    print(f"\nmedian of {len(runs)} run(s) against docs/performance.md ({database}; a regression "
          f"is more than {TOLERANCE:.0%} worse):")
    for verdict in verdicts:
        print("  " + verdict.line())
    failed = [v.name for v in verdicts if v.regressed]
    print(f"check: {'FAILED: ' + ', '.join(failed) if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
