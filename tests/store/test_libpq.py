"""Statements outside a transaction on PostgreSQL go to libpq directly (bridge/store/libpq.py):
the same values back as psycopg's cursor gives, its errors, and the prepared statements kept
in bounds and recovered when the server forgets them."""

from __future__ import annotations

import math

import psycopg
import pytest
import sqlalchemy as sa

from bridge.store import direct, libpq
from bridge.store.db import Database

pytestmark = pytest.mark.conformance

_ECHO = sa.text(
    "SELECT CAST(:text AS VARCHAR) AS text, CAST(:number AS INTEGER) AS number, "
    "CAST(:big AS BIGINT) AS big, CAST(:real AS DOUBLE PRECISION) AS real, "
    "CAST(:flag AS BOOLEAN) AS flag, CAST(:missing AS VARCHAR) AS missing, "
    "CAST(:text AS VARCHAR) || '%' AS again")

_VALUES = [
    {"text": "ünïcødé 👩‍💻 ' \" \\ $1 %s %(x)s", "number": -2_147_483_648, "big": 2**62,
     "real": 0.1 + 0.2, "flag": True, "missing": None},
    {"text": "", "number": 0, "big": -(2**63), "real": 1e-308, "flag": False, "missing": "x"},
    {"text": "a" * 5000, "number": 7, "big": 1, "real": -0.0, "flag": None, "missing": None},
]


def _postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("libpq is PostgreSQL's")


def _prepared_names(database: Database) -> set[str]:
    """The statements this package prepared on the connection a lookup gets (the pool's last)."""
    with database.lookup() as connection:
        return _prepared_names_on(connection)


def _prepared_names_on(connection: direct.Runner) -> set[str]:
    rows = connection.connection.driver_connection.execute(
        "SELECT name FROM pg_prepared_statements").fetchall()
    return {name for (name,) in rows if name.startswith("bridge_")}


def test_psycopg_placeholders_become_numbered_ones() -> None:
    converted = libpq.dollar_sql("SELECT %(a)s, %(b)s::FLOAT, 'x%%y' WHERE %(a)s = 1")
    assert converted == libpq.DollarSql(b"SELECT $1, $2::FLOAT, 'x%y' WHERE $1 = 1", ("a", "b"))
    # Anything but named placeholders, or a dollar sign of its own, stays with the cursor.
    assert libpq.dollar_sql("SELECT %s") is None
    assert libpq.dollar_sql("SELECT %(a)s, 50 % 7") is None
    assert libpq.dollar_sql("SELECT $$%(a)s$$") is None
    assert libpq.dollar_sql("SELECT %()s") is None


@pytest.mark.parametrize("values", _VALUES)
def test_values_come_back_as_the_cursor_gives_them(database: Database,
                                                   values: dict[str, object]) -> None:
    _postgresql(database)
    with database.lookup() as connection:
        by_libpq = direct.first(connection, _ECHO, values)
        assert connection.connection.info.get(libpq._STATE) is not None  # it went to libpq
    with database.driver_transaction() as connection:  # a transaction: psycopg's cursor
        by_cursor = direct.first(connection, _ECHO, values)
    assert by_libpq == by_cursor
    assert by_libpq._fields == by_cursor._fields
    assert [type(v) for v in by_libpq] == [type(v) for v in by_cursor]
    assert math.copysign(1, by_libpq.real) == math.copysign(1, by_cursor.real)
    assert by_libpq.text == values["text"] and by_libpq.again == f"{values['text']}%"
    assert by_libpq.real == values["real"]


def test_a_write_outside_a_transaction_counts_and_commits(database: Database) -> None:
    _postgresql(database)
    table = sa.table("consumed_assertions", sa.column("idp_entity_id"),
                     sa.column("assertion_id"), sa.column("expires_at"))
    insert = sa.insert(table).values(idp_entity_id=sa.bindparam("idp"),
                                     assertion_id=sa.bindparam("id"),
                                     expires_at=sa.bindparam("at"))
    update = (sa.update(table).where(table.c.assertion_id == sa.bindparam("id"))
              .values(expires_at=sa.bindparam("at")))
    with database.single_statement() as connection:
        assert direct.rowcount(connection, insert, {"idp": "i", "id": "w-1", "at": 1.5}) == 1
    with database.single_statement() as connection:
        assert direct.rowcount(connection, update, {"id": "w-1", "at": 2.5}) == 1
        assert direct.rowcount(connection, update, {"id": "w-none", "at": 2.5}) == 0
    # Seen from a connection of another pool: committed.
    other = Database(database.url)
    try:
        with other.connection() as connection:
            assert connection.execute(sa.select(table.c.expires_at).where(
                table.c.assertion_id == "w-1")).scalar_one() == 2.5
    finally:
        other.dispose()


def test_the_servers_errors_are_the_cursors_errors(database: Database) -> None:
    _postgresql(database)
    with pytest.raises(sa.exc.DataError), database.lookup() as connection:
        direct.first(connection, sa.text("SELECT CAST(:v AS INTEGER) AS v"), {"v": "not a number"})
    with pytest.raises(sa.exc.ProgrammingError), database.lookup() as connection:
        direct.first(connection, sa.text("SELECT nothing FROM no_such_table WHERE 1 = :v"),
                     {"v": 1})
    # The connection is usable after either.
    with database.lookup() as connection:
        assert direct.first(connection, sa.text("SELECT :v AS v"), {"v": "still"}).v == "still"
        assert direct.first(connection, sa.text("SELECT 1 AS one"), {}).one == 1


def test_statements_the_server_forgot_are_prepared_again(database: Database) -> None:
    _postgresql(database)
    statement = sa.text("SELECT CAST(:v AS VARCHAR) AS v")
    with database.lookup() as connection:
        assert direct.first(connection, statement, {"v": "a"}).v == "a"
        driver = connection.connection.driver_connection
        driver.execute("DEALLOCATE ALL")
        assert direct.first(connection, statement, {"v": "b"}).v == "b"


def test_one_forgotten_statement_leaves_the_others_and_the_connection_usable(
        database: Database) -> None:
    """Only one of a connection's statements gone (a pooler, someone's DEALLOCATE): it comes
    back under its own name, and no other name is handed out twice."""
    _postgresql(database)
    database.dispose()  # one connection for everything below
    statements = [sa.text(f"SELECT CAST(:v AS VARCHAR) || '{n}' AS v") for n in range(3)]
    with database.lookup() as connection:
        for statement in statements:
            direct.first(connection, statement, {"v": "a"})
        names = sorted(_prepared_names_on(connection))
        connection.connection.driver_connection.execute(f"DEALLOCATE {names[-1]}")
    for _ in range(2):
        with database.lookup() as connection:
            assert [direct.first(connection, s, {"v": "b"}).v for s in statements] == [
                "b0", "b1", "b2"]
            assert direct.first(connection, sa.text("SELECT CAST(:v AS INTEGER) AS v"),
                                {"v": 1}).v == 1
    assert len(_prepared_names(database)) == 4


def test_prepared_statements_per_connection_are_bounded(database: Database,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _postgresql(database)
    monkeypatch.setattr(libpq, "_PREPARED_LIMIT", 3)
    database.dispose()  # one fresh connection for all the statements below
    for n in range(8):
        # A statement of its own each time (a different text), as one built per call would be.
        statement = sa.text(f"SELECT CAST(:v AS INTEGER) + {n} AS v")
        with database.lookup() as connection:
            assert direct.first(connection, statement, {"v": 1}).v == 1 + n
    assert len(_prepared_names(database)) == 3


def test_a_connection_in_a_transaction_keeps_the_cursor(database: Database) -> None:
    """psycopg begins the transaction with the first statement; libpq would not: a statement in
    a transaction never goes there, so a rollback undoes it."""
    _postgresql(database)
    table = sa.table("consumed_assertions", sa.column("idp_entity_id"),
                     sa.column("assertion_id"), sa.column("expires_at"))
    insert = sa.insert(table).values(idp_entity_id=sa.bindparam("idp"),
                                     assertion_id=sa.bindparam("id"),
                                     expires_at=sa.bindparam("at"))

    class Undo(Exception):
        pass

    with pytest.raises(Undo), database.driver_transaction() as connection:
        direct.execute(connection, insert, {"idp": "i", "id": "t-1", "at": 1.0})
        status = connection.connection.driver_connection.info.transaction_status
        assert status == psycopg.pq.TransactionStatus.INTRANS
        raise Undo
    with database.lookup() as connection:
        found = direct.first(connection, sa.select(table.c.assertion_id).where(
            table.c.assertion_id == sa.bindparam("id")), {"id": "t-1"})
    assert found is None
