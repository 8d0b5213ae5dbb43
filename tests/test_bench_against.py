"""scripts/bench --http --against: the other commit's tree, and the verdict on paired rounds."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _load() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))  # its neighbours (bench_http, bench_check) are imported by name
    try:
        spec = importlib.util.spec_from_file_location("bench_against", SCRIPTS / "bench_against.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


bench_against = _load()


def _rounds(*rows: tuple[float, float, float, float]) -> SimpleNamespace:
    return SimpleNamespace(rounds=[dict(zip(bench_against.MEASURES, row, strict=True))
                                   for row in rows])


def test_the_other_commit_is_its_own_tree(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert bench_against.export("HEAD", tmp_path / "tree") == head
    assert (tmp_path / "tree" / "bridge" / "wsgi.py").is_file()
    assert not (tmp_path / "tree" / ".git").exists()
    with pytest.raises(SystemExit, match="no such commit"):
        bench_against.export("no-such-ref-anywhere", tmp_path / "other")


def test_the_verdict_is_on_the_per_round_quotients() -> None:
    # The machine slowed down in round 2 for both sides alike: paired, this side is 10 % worse
    # on the refresh ratio and 20 % worse on a login; medians of the sides alone would say less.
    ref = _rounds((500, 1000, 2.0, 4000), (800, 1800, 2.25, 6000), (500, 1000, 2.0, 4000))
    this = _rounds((500, 1100, 2.2, 4800), (800, 1980, 2.475, 7200), (500, 1100, 2.2, 4800))
    paired = bench_against.quotients(ref, this)
    assert paired["refresh ÷ healthz"] == pytest.approx(1.10)
    assert paired["login µs"] == pytest.approx(1.20)
    assert bench_against.regressions(paired) == ["login µs"]
    assert bench_against.regressions(paired, tolerance=0.25) == []
