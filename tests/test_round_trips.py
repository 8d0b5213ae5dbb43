"""Round trips to PostgreSQL of the hot paths, counted in libpq's protocol trace (each run of
frontend messages that the server answers is one): a refresh is one statement, a code exchange a
read and a write, a login at the ACS two reads and a write (decision 22); the pool pings only a
connection that sat idle (store/db.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bridge.store.db import Database
from tests.helpers import Browser


def _round_trips(trace: str) -> int:
    trips, last = 0, ""
    for line in trace.splitlines():
        direction = next((field for field in line.split("\t") if field in ("F", "B")), "")
        if direction == "F" and last != "F":
            trips += 1
        last = direction or last
    return trips


@pytest.fixture
def traced(browser: Browser, tmp_path: Path) -> Iterator[Callable[[Callable[[], Any]], int]]:
    """Round trips of a piece of work, on connections opened from here on."""
    db: Database = browser.bridge.db
    if db.dialect != "postgresql":
        pytest.skip("round trips are a PostgreSQL matter")
    path = tmp_path / "trace"
    with path.open("w") as trace:
        def on_connect(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.pgconn.trace(trace.fileno())

        def count(work: Callable[[], Any]) -> int:
            trace.flush()
            start = path.stat().st_size
            work()
            trace.flush()
            with path.open() as read:
                read.seek(start)
                return _round_trips(read.read())

        db.dispose()  # the pool's connections and the kept ones: every one is traced
        event.listen(db.engine, "connect", on_connect)
        try:
            yield count
        finally:
            event.remove(db.engine, "connect", on_connect)
            db.dispose()


def test_a_refresh_is_one_round_trip_and_so_is_a_code_exchange(
        browser: Browser, traced: Callable[[Callable[[], Any]], int]) -> None:
    tokens: dict[str, Any] = browser.tokens()
    code, login = browser.login()

    def exchange() -> None:
        assert browser.exchange(code, login.verifier).status_code == 200

    def refresh() -> None:
        response = browser.refresh(tokens["refresh_token"])
        assert response.status_code == 200
        tokens.update(response.get_json())

    for _ in range(6):  # past psycopg's prepare threshold: the steady state
        refresh()
    # One each, not none: a trace that missed the work's connection would count none.
    assert traced(exchange) == 1
    assert traced(refresh) == 1


def test_a_login_at_the_acs_is_two_round_trips(
        browser: Browser, traced: Callable[[Callable[[], Any]], int]) -> None:
    """Find the login request, and one statement that checks the person is not deprovisioned,
    uses the request and the assertion, stores the code and audits the login."""
    trips = []
    for _ in range(7):  # past psycopg's prepare threshold: the steady state
        login = browser.start()
        saml_response = browser.signed_response(login)

        def acs() -> None:
            browser.code_from(browser.post_acs(saml_response), login)  # noqa: B023 - called here

        trips.append(traced(acs))
    assert 1 <= trips[-1] <= 2
