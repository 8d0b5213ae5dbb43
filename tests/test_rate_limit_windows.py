"""The in-process rate-limit counters behind ``memory://``: fixed windows, no timer thread."""

from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.strategies import FixedWindowRateLimiter

from bridge.web import rate_limits
from bridge.web.rate_limits import ProcessWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(rate_limits, "time", clock)
    return clock


def test_a_window_counts_up_to_its_limit_then_starts_again(clock: Clock) -> None:
    limiter = FixedWindowRateLimiter(ProcessWindows())
    item = parse("3/minute")
    assert [limiter.hit(item, "bridge", "acs", "a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "bridge", "acs", "b")  # another key has its own budget
    stats = limiter.get_window_stats(item, "bridge", "acs", "a")
    assert stats.remaining == 0 and stats.reset_time == clock.now + 60
    clock.now += 59
    assert not limiter.hit(item, "bridge", "acs", "a")
    clock.now += 1
    assert limiter.hit(item, "bridge", "acs", "a")
    assert limiter.get_window_stats(item, "bridge", "acs", "a").remaining == 2


def test_expired_windows_are_swept_and_no_thread_is_started(clock: Clock) -> None:
    windows = ProcessWindows()
    threads = threading.active_count()
    for address in range(100):
        windows.incr(f"acs/{address}", 60)
    assert threading.active_count() == threads
    clock.now += ProcessWindows.SWEEP_SECONDS + 1
    windows.incr("acs/fresh", 60)
    assert windows.get("acs/0") == 0
    assert windows.reset() == 1  # only the fresh window was left
