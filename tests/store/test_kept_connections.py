"""The driver connections kept apart from the pool for store/direct.py's statements
(bridge/store/kept_connections.py), on SQLite and PostgreSQL: reused rather than made anew, never
shared by two callers at once, never handed out lost, inside a transaction, after ``dispose()``
or across a fork, and at most ``keep`` of them idle."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
import sqlalchemy as sa

from bridge.errors import StoreUnavailable
from bridge.store import db as db_module
from bridge.store import direct
from bridge.store.db import Database
from bridge.store.kept_connections import KeptConnections
from bridge.store.models import ConsumedAssertion

pytestmark = pytest.mark.conformance

_ONE = sa.text("SELECT 1 AS one")
_INSERT = sa.insert(ConsumedAssertion)
_FIND = sa.select(ConsumedAssertion.assertion_id).where(
    ConsumedAssertion.assertion_id == sa.bindparam("id"))
_PID = sa.text("SELECT pg_backend_pid() AS pid")


@pytest.fixture
def own(database: Database) -> Iterator[Database]:
    """A ``Database`` of its own on the test's database: its connections are the test's."""
    ours = Database(database.url)
    yield ours
    ours.dispose()


def _connects(database: Database) -> list[object]:
    made: list[object] = []
    sa.event.listen(database.engine, "connect", lambda dbapi, _record: made.append(dbapi))
    return made


def _driver_of(connection: direct.DriverConnection) -> Any:
    return connection.connection.driver_connection


def test_direct_statements_reuse_one_kept_connection(own: Database) -> None:
    made = _connects(own)
    drivers = set()
    for _ in range(3):
        with own.lookup() as connection:
            assert direct.first(connection, _ONE, {}).one == 1
            drivers.add(id(_driver_of(connection)))
        with own.single_statement() as connection:
            direct.first(connection, _ONE, {})
            drivers.add(id(_driver_of(connection)))
    assert len(made) == 1 and len(drivers) == 1


def _held_at_once(database: Database, count: int, statement: sa.TextClause = _ONE
                  ) -> list[tuple[Any, Any]]:
    """``count`` callers in threads, each holding a ``lookup()`` connection until all hold one:
    each one's driver connection and the row its ``statement`` gave."""
    holding = threading.Barrier(count, timeout=10)
    held: list[tuple[Any, Any]] = []

    def use() -> None:
        with database.lookup() as connection:
            held.append((_driver_of(connection), direct.first(connection, statement, {})))
            holding.wait()

    threads = [threading.Thread(target=use) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(held) == count
    return held


def test_callers_at_once_never_share_a_kept_connection(own: Database) -> None:
    assert len({id(driver) for driver, _ in _held_at_once(own, 4)}) == 4


def test_past_the_cap_callers_take_the_pools_connections(own: Database) -> None:
    """At most KEPT_CONNECTIONS kept, busy or idle: while all are busy, a caller is served on
    the pool's connection (on PostgreSQL in autocommit for the while), which goes back to the
    pool open and, on PostgreSQL, out of autocommit."""
    cap = db_module.KEPT_CONNECTIONS
    made = _connects(own)
    held = _held_at_once(own, cap + 3)
    assert len({id(driver) for driver, _ in held}) == cap + 3
    assert own.kept() == (0, cap)
    assert len(made) == cap + 3  # no more connections than callers at once
    kept = {id(k.pooled.driver_connection) for k in own._kept._idle}
    borrowed = [driver for driver, _ in held if id(driver) not in kept]
    assert len(borrowed) == 3 and not any(_closed(driver) for driver in borrowed)
    if own.dialect == "postgresql":
        assert not any(driver.autocommit for driver in borrowed)
    # The kept ones count as the pool's: checked out, busy or idle.
    assert own.engine.pool.checkedout() == cap  # type: ignore[attr-defined]


def test_writes_past_the_cap_commit_like_any_other(own: Database) -> None:
    """A single statement on a borrowed connection commits at once on PostgreSQL (autocommit)
    and in its transaction on SQLite, as on a kept one."""
    cap = db_module.KEPT_CONNECTIONS
    holding = threading.Barrier(cap + 1, timeout=10)
    release = threading.Event()

    def hold() -> None:
        with own.lookup():
            holding.wait()
            release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(cap)]
    for thread in threads:
        thread.start()
    try:
        holding.wait()
        assert own.kept() == (cap, 0)
        with own.single_statement() as connection:
            assert own.kept() == (cap, 0)  # served, and not on a kept connection
            direct.execute(connection, _INSERT, {"idp_entity_id": "https://idp",
                                                 "assertion_id": "past-cap",
                                                 "expires_at": 1.0})
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    other = Database(own.url)
    try:
        with other.lookup() as connection:
            assert direct.first(connection, _FIND, {"id": "past-cap"}) is not None
    finally:
        other.dispose()


def _closed(driver: Any) -> bool:
    if hasattr(driver, "closed"):  # psycopg
        return bool(driver.closed)
    try:
        driver.execute("SELECT 1")  # sqlite3
    except Exception:  # noqa: BLE001 - sqlite3.ProgrammingError: closed
        return True
    return False


def _begin(connection: direct.DriverConnection, dialect: str) -> None:
    direct.execute(connection, sa.text("BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN"), {})


def test_a_connection_given_back_inside_a_transaction_is_closed(own: Database) -> None:
    """Work that began a transaction and did not end it (a bug, or a failed rollback): its
    connection is closed, with its transaction and any lock it held, and never handed out."""
    with own.lookup() as connection:
        _begin(connection, own.dialect)
        left = _driver_of(connection)
    assert _closed(left)
    with own.lookup() as connection:
        assert _driver_of(connection) is not left
        # SQLite: the write lock went with it (a writer would otherwise wait 30 s for it).
        _begin(connection, own.dialect)
        direct.finish(connection, commit=False)


def test_dispose_closes_idle_connections_and_those_in_use_as_they_come_back(
        own: Database) -> None:
    with own.lookup() as connection:
        idle = _driver_of(connection)
    with own.lookup() as connection:
        in_use = _driver_of(connection)
        assert in_use is idle
        own.dispose()
        assert _closed(idle) is False  # in use: closed only once it comes back
    assert _closed(idle)
    with own.lookup() as connection:
        assert _driver_of(connection) is not idle
        assert direct.first(connection, _ONE, {}).one == 1


def test_postgresql_kept_connections_are_in_autocommit_and_the_pools_are_not(
        own: Database) -> None:
    if own.dialect != "postgresql":
        pytest.skip("autocommit is a PostgreSQL matter")
    with own.lookup() as connection:
        assert _driver_of(connection).autocommit is True
    with own.engine.connect() as pooled:
        assert cast(Any, pooled.connection.driver_connection).autocommit is False


def test_an_idle_kept_connection_the_server_closed_is_replaced_unseen(
        own: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    if own.dialect != "postgresql":
        pytest.skip("connections that the server closes are a PostgreSQL matter")
    with own.lookup() as connection:
        pid = direct.first(connection, _PID, {}).pid
    _terminate(own.url, [pid])
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has sat idle long enough
    with own.lookup() as connection:
        assert direct.first(connection, _PID, {}).pid != pid


def test_kept_connections_lost_in_steady_use_cost_one_request(own: Database) -> None:
    if own.dialect != "postgresql":
        pytest.skip("connections that the server closes are a PostgreSQL matter")
    pids = [row.pid for _, row in _held_at_once(own, 3, _PID)]
    assert own.kept() == (0, 3)
    _terminate(own.url, pids)
    # Just used, so not pinged: the first request finds its connection lost ...
    with pytest.raises(StoreUnavailable), own.lookup() as connection:
        direct.first(connection, _PID, {})
    # ... and the others kept with it are dropped unused, and counted out of the pool once:
    # the pool's count of what is checked out stays true (it counts kept ones), so it still
    # opens no more than its limit.
    assert own.kept() == (0, 0)
    assert own.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with own.single_statement() as connection:
        assert direct.first(connection, _PID, {}).pid not in pids


def _terminate(url: str, pids: list[int]) -> None:
    admin = Database(url)
    try:
        with admin.lookup() as connection:
            for pid in pids:
                direct.first(connection, sa.text("SELECT pg_terminate_backend(:pid) AS done"),
                             {"pid": pid})
    finally:
        admin.dispose()


def test_a_forked_child_uses_and_closes_none_of_its_parents_connections(own: Database) -> None:
    with own.lookup() as connection:
        direct.first(connection, _ONE, {})
        parents = _driver_of(connection)
    child = os.fork()
    if child == 0:  # the child: report through the exit status only, and leave at once
        status = 1
        try:
            own.engine.dispose(close=False)  # SQLAlchemy's own pool after a fork, as it asks
            with own.lookup() as connection:
                status = 0 if _driver_of(connection) is not parents else 2
                direct.first(connection, _ONE, {})
            own.dispose()
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connection is whole: the child neither used nor closed it.
    with own.lookup() as connection:
        assert _driver_of(connection) is parents
        assert direct.first(connection, _ONE, {}).one == 1


def test_a_kept_connection_that_cannot_be_made_is_store_unavailable() -> None:
    database = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(StoreUnavailable), database.lookup():
            pass
    finally:
        database.dispose()


def test_a_connection_that_cannot_be_switched_to_autocommit_is_closed(own: Database) -> None:
    if own.dialect != "postgresql":
        pytest.skip("autocommit is a PostgreSQL matter")
    taken: list[Any] = []

    def in_a_transaction() -> Any:
        pooled = own._raw_connection()
        cast(Any, pooled.driver_connection).execute("SELECT 1")  # the driver began one
        taken.append(pooled.driver_connection)
        return pooled

    kept = KeptConnections(own.engine, in_a_transaction, autocommit=True, keep=2,
                           ping_after=lambda: None)
    with pytest.raises(Exception, match="autocommit"), kept.connection():
        pass
    assert len(taken) == 1 and _closed(taken[0])
    assert kept.busy() == 0


def test_a_ping_interrupted_gives_back_what_it_held(own: Database,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyboardInterrupt (or a green thread's timeout) while an idle connection is pinged: the
    connection is dropped and its place freed, not held busy for ever."""
    if own.dialect != "postgresql":
        pytest.skip("idle connections are pinged on PostgreSQL")
    with own.lookup() as connection:
        direct.first(connection, _ONE, {})
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)

    def interrupted(_dbapi_connection: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(own.engine.dialect, "do_ping", interrupted)
    with pytest.raises(KeyboardInterrupt), own.lookup():
        pass
    assert own.kept() == (0, 0)
    assert own.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_connection_taken_while_a_dispose_runs_is_not_kept(own: Database) -> None:
    """dispose() while a kept connection is being made (its pool taken before the dispose): the
    new one belongs to what the dispose ends, and is closed as it comes back."""
    kept: KeptConnections

    def connect_then_disposed() -> Any:
        pooled = own._raw_connection()
        kept.dispose()  # as another thread would, in the meantime
        return pooled

    kept = KeptConnections(own.engine, connect_then_disposed, autocommit=False, keep=2,
                           ping_after=lambda: None)
    with kept.connection() as pooled:
        driver = pooled.driver_connection
    assert kept.idle() == 0 and _closed(driver)
