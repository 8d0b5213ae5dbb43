"""scripts/bench --check: reading the committed figures and judging measured ratios against them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_check.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench_check = _load()

DOC = """# Performance

Some prose.

## Committed figures

| ratio | SQLite | PostgreSQL | better | what |
|---|---|---|---|---|
| `refresh-cpu-per-healthz` | 2.00 | **3.00×** | lower | refresh CPU ÷ healthz CPU |
| `logins-per-s-per-pysaml2` | 14.0 | — | higher | logins/s ÷ pysaml2 validations/s |

## Next section

| not | this | table |
|---|---|---|
| `other` | 1 | lower |
"""


def test_reads_the_committed_table_and_only_it() -> None:
    committed = bench_check.parse_committed(DOC)
    assert set(committed) == {"refresh-cpu-per-healthz", "logins-per-s-per-pysaml2"}
    assert committed["refresh-cpu-per-healthz"].figures == {"sqlite": 2.0, "postgresql": 3.0}
    assert committed["refresh-cpu-per-healthz"].better == "lower"
    assert committed["logins-per-s-per-pysaml2"].figures == {"sqlite": 14.0}
    assert committed["logins-per-s-per-pysaml2"].better == "higher"


def test_figures_within_tolerance_pass() -> None:
    committed = bench_check.parse_committed(DOC)
    # 14 % worse on the lower-is-better ratio, 13 % fewer logins, both inside 15 %.
    verdicts = bench_check.compare(committed, {"refresh-cpu-per-healthz": 2.28,
                                               "logins-per-s-per-pysaml2": 12.4}, "sqlite")
    assert [(v.name, v.regressed) for v in verdicts] == [
        ("refresh-cpu-per-healthz", False), ("logins-per-s-per-pysaml2", False)]
    better = bench_check.compare(committed, {"refresh-cpu-per-healthz": 1.0,
                                             "logins-per-s-per-pysaml2": 30.0}, "sqlite")
    assert not any(v.regressed for v in better)


def test_a_regression_beyond_tolerance_fails_in_either_direction() -> None:
    committed = bench_check.parse_committed(DOC)
    verdicts = bench_check.compare(committed, {"refresh-cpu-per-healthz": 2.40,
                                               "logins-per-s-per-pysaml2": 11.0}, "sqlite")
    assert [(v.name, v.regressed) for v in verdicts] == [
        ("refresh-cpu-per-healthz", True), ("logins-per-s-per-pysaml2", True)]
    assert "REGRESSED" in verdicts[0].line() and "2.00" in verdicts[0].line()


def test_only_the_measured_database_is_compared() -> None:
    committed = bench_check.parse_committed(DOC)
    verdicts = bench_check.compare(committed, {"refresh-cpu-per-healthz": 3.2}, "postgresql")
    assert [(v.name, v.committed, v.regressed) for v in verdicts] == [
        ("refresh-cpu-per-healthz", 3.0, False)]


def test_a_committed_ratio_the_benchmark_no_longer_measures_is_an_error() -> None:
    committed = bench_check.parse_committed(DOC)
    with pytest.raises(ValueError, match="logins-per-s-per-pysaml2"):
        bench_check.compare(committed, {"refresh-cpu-per-healthz": 2.0}, "sqlite")


@pytest.mark.parametrize("broken", [
    DOC.replace("## Committed figures", "## Figures"),
    DOC.replace("| lower | refresh", "| smaller | refresh"),
    DOC.replace("`refresh-cpu-per-healthz`", "refresh"),
    DOC.replace("| ratio | SQLite |", "| name | SQLite |"),
])
def test_an_unreadable_table_is_an_error_not_a_pass(broken: str) -> None:
    with pytest.raises(ValueError):
        bench_check.parse_committed(broken)


def test_the_committed_document_is_readable() -> None:
    committed = bench_check.parse_committed(bench_check.DOC.read_text())
    assert {"login-cpu-per-stock-is-valid", "logins-per-s-per-pysaml2",
            "refresh-cpu-per-healthz"} <= set(committed)
    assert all(entry.figures for entry in committed.values())


def test_the_median_of_several_runs_is_judged() -> None:
    committed = bench_check.parse_committed(DOC)
    runs = [{"refresh-cpu-per-healthz": 2.1, "logins-per-s-per-pysaml2": 9.0},
            {"refresh-cpu-per-healthz": 3.9, "logins-per-s-per-pysaml2": 14.5},
            {"refresh-cpu-per-healthz": 2.2, "logins-per-s-per-pysaml2": 15.0}]
    measured = bench_check.median_ratios(runs)
    assert measured == {"logins-per-s-per-pysaml2": 14.5, "refresh-cpu-per-healthz": 2.2}
    assert not any(v.regressed for v in bench_check.compare(committed, measured, "sqlite"))
