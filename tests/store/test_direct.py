"""What the driver-level statements (bridge/store/direct.py) keep from SQLAlchemy's pipeline, on
SQLite and PostgreSQL: NUL characters refused, driver errors as SQLAlchemy's classes, a lost
connection as ``StoreUnavailable``, rows with named columns, and reads that take no write lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import sqlalchemy as sa

from bridge.errors import InvalidValue, StoreUnavailable
from bridge.replay import remember_message
from bridge.store import direct
from bridge.store.db import Database
from bridge.store.models import ConsumedAssertion

pytestmark = pytest.mark.conformance

_FIND = sa.select(ConsumedAssertion.idp_entity_id, ConsumedAssertion.assertion_id,
                  ConsumedAssertion.expires_at).where(
    ConsumedAssertion.assertion_id == sa.bindparam("id"))


def _remember(database: Database, message_id: str) -> None:
    with database.connection() as connection:
        remember_message(connection, idp_entity_id="https://idp", message_id=message_id,
                         expires_at=1_800_000_000.5)


def test_rows_come_back_with_named_columns_and_their_types(database: Database) -> None:
    _remember(database, "m-1")
    with database.lookup() as connection:
        row = direct.first(connection, _FIND, {"id": "m-1"})
        assert direct.first(connection, _FIND, {"id": "m-2"}) is None
    assert (row.idp_entity_id, row.assertion_id, row.expires_at) == (
        "https://idp", "m-1", 1_800_000_000.5)


def test_a_nul_character_is_refused_before_the_driver_sees_it(database: Database) -> None:
    with pytest.raises(InvalidValue), database.lookup() as connection:
        direct.first(connection, _FIND, {"id": "m\x00-1"})


def test_a_second_use_is_an_integrity_error_and_rolls_back(database: Database) -> None:
    _remember(database, "m-1")
    with pytest.raises(sa.exc.IntegrityError), database.connection() as connection:
        remember_message(connection, idp_entity_id="https://idp", message_id="m-3",
                         expires_at=1.0)
        remember_message(connection, idp_entity_id="https://idp", message_id="m-1",
                         expires_at=1.0)
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "m-3"}) is None  # nothing half-written


def test_a_lookup_takes_no_write_lock(database: Database) -> None:
    """A read while another transaction writes neither waits for it nor sees its rows."""
    _remember(database, "m-1")
    writing, done = threading.Event(), threading.Event()

    def writer() -> None:
        with database.connection() as connection:
            remember_message(connection, idp_entity_id="https://idp", message_id="m-9",
                             expires_at=1.0)
            writing.set()
            done.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(10)
        with database.lookup() as connection:
            assert direct.first(connection, _FIND, {"id": "m-1"}) is not None
            assert direct.first(connection, _FIND, {"id": "m-9"}) is None
    finally:
        done.set()
        thread.join()


def test_a_lost_postgresql_connection_is_store_unavailable(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("a lost connection is a PostgreSQL matter")
    admin = Database(database.url)
    try:
        with pytest.raises(StoreUnavailable), database.connection() as connection:
            pid = direct.first(connection, sa.text("SELECT pg_backend_pid() AS pid"), {}).pid
            with admin.lookup() as other:
                direct.first(other, sa.text("SELECT pg_terminate_backend(:pid) AS done"),
                             {"pid": pid})
            remember_message(connection, idp_entity_id="https://idp", message_id="m-5",
                             expires_at=1.0)
    finally:
        admin.dispose()
    # The dead connection was dropped: the next request is served.
    _remember(database, "m-6")


def _insert(connection: direct.Runner, message_id: str) -> None:
    direct.execute(connection, _INSERT, {"idp_entity_id": "https://idp",
                                         "assertion_id": message_id, "expires_at": 1.0})


_INSERT = sa.insert(ConsumedAssertion)


def _undone_by_an_error(transaction: Callable[[], AbstractContextManager[direct.Runner]],
                        message_id: str) -> None:
    """Write in ``transaction`` and fail with an error of the caller's: nothing may stay."""
    with pytest.raises(RuntimeError), transaction() as connection:
        _insert(connection, message_id)
        raise RuntimeError("any error of the caller's")


def test_a_driver_transaction_commits_what_it_wrote(database: Database) -> None:
    with database.driver_transaction() as connection:
        _insert(connection, "d-1")
        _insert(connection, "d-2")
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "d-1"}) is not None
        assert direct.first(connection, _FIND, {"id": "d-2"}) is not None


def test_a_driver_transaction_rolls_back_everything_when_its_work_fails(
        database: Database) -> None:
    _remember(database, "d-1")
    with pytest.raises(sa.exc.IntegrityError), database.driver_transaction() as connection:
        _insert(connection, "d-3")
        _insert(connection, "d-1")  # a second use: the driver's error as SQLAlchemy's class
    _undone_by_an_error(database.driver_transaction, "d-4")
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "d-3"}) is None
        assert direct.first(connection, _FIND, {"id": "d-4"}) is None
    # The connection went back to the pool clean: the next transaction works as usual.
    with database.driver_transaction() as connection:
        _insert(connection, "d-5")
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "d-5"}) is not None


def test_a_driver_transaction_serializes_writers_like_any_other(database: Database) -> None:
    """SQLite: it takes the write lock up front (BEGIN IMMEDIATE), so a second writer waits for
    it; PostgreSQL: the second waits on the row's lock. Either way it sees the first's row."""
    holding, done = threading.Event(), threading.Event()
    seen: list[object] = []

    def first_writer() -> None:
        with database.driver_transaction() as connection:
            _insert(connection, "d-7")
            holding.set()
            done.wait(10)

    def second_writer() -> None:
        with pytest.raises(sa.exc.IntegrityError), database.driver_transaction() as connection:
            seen.append("started")
            _insert(connection, "d-7")

    thread = threading.Thread(target=first_writer)
    thread.start()
    assert holding.wait(10)
    racer = threading.Thread(target=second_writer)
    racer.start()
    racer.join(0.5)
    assert racer.is_alive()  # waiting for the first writer
    done.set()
    thread.join()
    racer.join(10)
    assert not racer.is_alive() and seen


@pytest.mark.parametrize("use", ["driver_transaction", "single_statement"])
def test_a_lost_postgresql_connection_on_the_driver_is_store_unavailable(
        database: Database, use: str) -> None:
    if database.dialect != "postgresql":
        pytest.skip("a lost connection is a PostgreSQL matter")
    admin = Database(database.url)
    try:
        with pytest.raises(StoreUnavailable), getattr(database, use)() as connection:
            pid = direct.first(connection, sa.text("SELECT pg_backend_pid() AS pid"), {}).pid
            with admin.lookup() as other:
                direct.first(other, sa.text("SELECT pg_terminate_backend(:pid) AS done"),
                             {"pid": pid})
            _insert(connection, "d-8")
    finally:
        admin.dispose()
    # The dead connection was dropped, and the next one is transactional.
    _undone_by_an_error(database.driver_transaction, "d-9")
    with database.driver_transaction() as connection:
        _insert(connection, "d-10")
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "d-9"}) is None
        assert direct.first(connection, _FIND, {"id": "d-10"}) is not None


def test_a_statement_outside_a_transaction_commits_at_once_and_leaves_the_pool_transactional(
        database: Database) -> None:
    """``single_statement()`` and ``lookup()`` run on the driver's connection with each statement
    committed on its own (on PostgreSQL by switching it into autocommit); handed back, the
    connection must be transactional again, or a later transaction's rollback would undo
    nothing."""
    _remember(database, "s-1")
    with database.single_statement() as connection:
        _insert(connection, "s-2")
    with pytest.raises(sa.exc.IntegrityError), database.single_statement() as connection:
        _insert(connection, "s-1")  # refused: the connection still goes back usable
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "s-2"}) is not None
    # Every pooled connection (one, or several if the pool grew) rolls back as it should.
    for _ in range(3):
        _undone_by_an_error(database.driver_transaction, "s-3")
        _undone_by_an_error(database.connection, "s-4")
    with database.lookup() as connection:
        assert direct.first(connection, _FIND, {"id": "s-3"}) is None
        assert direct.first(connection, _FIND, {"id": "s-4"}) is None


def test_a_database_that_cannot_be_reached_is_store_unavailable(database: Database) -> None:
    """The driver's connection comes from the pool's own check-out, which leaves a failure to
    connect as the driver raised it: it must be a 503 as everywhere else, not a 500."""
    if database.dialect != "postgresql":
        pytest.skip("an unreachable server is a PostgreSQL matter")
    closed_port = sa.engine.make_url(database.url).set(host="127.0.0.1", port=1)
    unreachable = Database(closed_port.render_as_string(hide_password=False))
    try:
        for use in (unreachable.lookup, unreachable.single_statement,
                    unreachable.driver_transaction):
            with pytest.raises(StoreUnavailable), use() as connection:
                direct.first(connection, _FIND, {"id": "m-1"})
    finally:
        unreachable.dispose()


def test_transactions_read_committed_whatever_the_servers_default(database: Database) -> None:
    """The hot paths re-read after waiting for a lock and count on seeing what the winner
    committed; under a server (or role) default of REPEATABLE READ the loser would fail with a
    serialization error, a 500, instead of being refused."""
    if database.dialect != "postgresql":
        pytest.skip("isolation levels are a PostgreSQL matter")
    name = sa.engine.make_url(database.url).database
    admin = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    level = sa.text("SELECT current_setting('transaction_isolation') AS level")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f"ALTER DATABASE \"{name}\" SET default_transaction_isolation TO 'repeatable read'")
        fresh = Database(database.url)  # new connections take the database's default
        try:
            for use in (fresh.driver_transaction, fresh.lookup, fresh.single_statement):
                with use() as connection:
                    assert direct.first(connection, level, {}).level == "read committed", use
            with fresh.connection() as core:
                assert direct.first(core, level, {}).level == "read committed"
            with fresh.transaction() as session:
                assert session.execute(level).scalar() == "read committed"
        finally:
            fresh.dispose()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f"ALTER DATABASE \"{name}\" RESET default_transaction_isolation")
        admin.dispose()


@pytest.mark.parametrize("use", ["lookup", "driver_transaction"])
def test_the_connection_used_last_is_handed_out_next(database: Database, use: str) -> None:
    """The pool is LIFO: once a burst has grown it, steady traffic keeps using one warm
    connection (SQLite's page cache current, the backend's caches and prepared statements on
    PostgreSQL) instead of cycling through connections that went stale while others wrote."""
    fresh = Database(database.url)
    try:
        held = [fresh.engine.raw_connection() for _ in range(3)]
        drivers = [c.driver_connection for c in held]
        for connection in held:  # returned in order: the last one in is the third
            connection.close()
        for _ in range(3):
            with getattr(fresh, use)() as connection:
                direct.first(connection, sa.text("SELECT 1 AS one"), {})
                assert connection.connection.driver_connection is drivers[2]
    finally:
        fresh.dispose()


_ALL = sa.select(ConsumedAssertion.assertion_id).order_by(ConsumedAssertion.assertion_id)


def test_statements_on_one_connection_each_read_their_own_rows(database: Database) -> None:
    """The connection's statements share a cursor on PostgreSQL: each reads what it ran, after
    another's rows were left unread and after another failed."""
    for message_id in ("m-1", "m-2", "m-3"):
        _remember(database, message_id)
    with database.lookup() as connection:
        assert direct.first(connection, _ALL, {}).assertion_id == "m-1"  # two rows left unread
        assert direct.first(connection, _FIND, {"id": "m-3"}).assertion_id == "m-3"
        with pytest.raises(sa.exc.DBAPIError):
            direct.execute(connection, sa.text("SELECT no_such_column FROM consumed_assertions"),
                           {})
        assert direct.first(connection, _FIND, {"id": "m-2"}).expires_at == 1_800_000_000.5
        assert direct.first(connection, _FIND, {"id": "m-4"}) is None


def test_a_first_row_read_leaves_no_snapshot_behind(database: Database) -> None:
    """A read of the first of several rows, on a connection then back in the pool, holds no
    read snapshot: SQLite checkpoints its whole log, and a later read sees later writes."""
    for message_id in ("m-1", "m-2", "m-3"):
        _remember(database, message_id)
    with database.lookup() as connection:
        assert direct.first(connection, _ALL, {}).assertion_id == "m-1"
    if database.dialect == "sqlite":
        # Another process's connection writes and checkpoints while ours idles in the pool.
        other = sqlite3.connect(database.url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            other.execute("INSERT INTO consumed_assertions (idp_entity_id, assertion_id, "
                          "expires_at) VALUES ('https://idp', 'm-0', 1.0)")
            busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            other.close()
        assert busy == 0
    else:
        _remember(database, "m-0")
    with database.lookup() as connection:
        assert direct.first(connection, _ALL, {}).assertion_id == "m-0"


def test_a_row_is_named_as_its_database_names_it(database: Database) -> None:
    """The same SQL on both databases (a suite runs both in one process): PostgreSQL folds an
    unquoted alias to lower case, SQLite keeps it as written."""
    statement = sa.text("SELECT 7 AS someValue")
    expected = "somevalue" if database.dialect == "postgresql" else "someValue"
    for _ in range(2):
        with database.lookup() as connection:
            assert direct.first(connection, statement, {})._fields == (expected,)


def test_a_row_of_a_changed_table_is_named_afresh(database: Database) -> None:
    """A statement that does not name its columns returns more of them once its table has grown:
    its rows are named from what the database returns, not from the first time it ran."""
    statement = sa.text("SELECT * FROM direct_probe")
    with database.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE direct_probe (a INTEGER, b INTEGER)")
        connection.exec_driver_sql("INSERT INTO direct_probe (a, b) VALUES (1, 2)")
    try:
        with database.lookup() as connection:
            assert direct.first(connection, statement, {})._fields == ("a", "b")
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE direct_probe ADD COLUMN c INTEGER DEFAULT 3")
        with database.lookup() as connection:
            row = direct.first(connection, statement, {})
        assert row._fields == ("a", "b", "c") and tuple(row) == (1, 2, 3)
    finally:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE direct_probe")
