"""PostgreSQL connections are checked before use only after sitting idle (store/db.py
``_ping_when_idle``): an idle connection the server closed is replaced unseen, and a connection
lost in steady use fails one request and empties the pool, so the next is served."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bridge.errors import StoreUnavailable
from bridge.store import db as db_module
from bridge.store import direct
from bridge.store.db import Database

pytestmark = pytest.mark.conformance

_PID = sa.text("SELECT pg_backend_pid() AS pid")


def _pids(database: Database, count: int) -> list[int]:
    """Check out ``count`` connections at once (so the pool holds as many); their backends."""
    connections = [database.engine.connect() for _ in range(count)]
    try:
        return [c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in connections]
    finally:
        for connection in connections:
            connection.close()


def _terminate(admin: Database, pids: list[int]) -> None:
    with admin.lookup() as connection:
        for pid in pids:
            direct.first(connection, sa.text("SELECT pg_terminate_backend(:pid) AS done"),
                         {"pid": pid})


def _pid_now(database: Database) -> int:
    with database.lookup() as connection:
        return int(direct.first(connection, _PID, {}).pid)


@pytest.fixture
def pair(database: Database):  # type: ignore[no-untyped-def]
    if database.dialect != "postgresql":
        pytest.skip("pooled connections that the server closes are a PostgreSQL matter")
    ours, admin = Database(database.url), Database(database.url)
    yield ours, admin
    ours.dispose()
    admin.dispose()


def test_an_idle_connection_the_server_closed_is_replaced_unseen(
        pair: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, admin = pair
    [pid] = _pids(ours, 1)
    _terminate(admin, [pid])
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has sat idle long enough
    assert _pid_now(ours) != pid  # served, on a new connection


def test_connections_lost_in_steady_use_cost_one_request(
        pair: tuple[Database, Database]) -> None:
    ours, admin = pair
    pids = _pids(ours, 3)
    _terminate(admin, pids)
    # Just used: not pinged. The first request finds its connection lost ...
    with pytest.raises(StoreUnavailable):
        _pid_now(ours)
    # ... and the pool is emptied with it: the next one is served on a new connection.
    assert _pid_now(ours) not in pids
