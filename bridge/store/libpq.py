"""Statements outside a transaction on PostgreSQL, run by libpq directly (``store/direct.py``).

A refresh, a code exchange and an ACS login on PostgreSQL each run one to three statements
outside any transaction (``Database.lookup()``, ``Database.single_statement()``). psycopg's cursor
runs each through its query, preparation and result state machines in Python generators:
about 50 µs of CPU per statement in a tight loop, and three times that inside a request, where
its code is cold. Here the statement is prepared once per connection and executed by libpq's own
blocking call (which releases the GIL while it waits), about half the CPU. What psycopg would
have done is kept: its adapters turn the values into parameters and the result's columns into
Python values (``psycopg.adapt.Transformer``, the cursor's own machinery), the statement is
prepared with the types the adapters chose, and errors are psycopg's exception classes, so
``direct.py`` translates them, and sees a lost connection, as it does the cursor's.

Only outside a transaction: psycopg begins a transaction itself before a connection's first
statement when the connection is not in autocommit, which a statement sent here would skip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Statements prepared per connection beyond which further ones run unprepared: the hot paths
# have a few dozen (a statement and the types of its values); more means statements built per
# call, which must not fill the server's memory.
_PREPARED_LIMIT = 128
# Where a pooled connection keeps its prepared statements (``PoolProxiedConnection.info`` lives
# as long as the driver's connection does).
_STATE = "bridge.libpq.statements"
# SQLAlchemy's SQL for psycopg: named placeholders, and a literal percent sign doubled.
_PLACEHOLDER = re.compile(r"%\((?P<name>[^)]*)\)s|%%|%")
# SQLSTATE invalid_sql_statement_name: a prepared statement the server does not hold.
_UNKNOWN_STATEMENT = b"26000"


@dataclass(frozen=True)
class DollarSql:
    """A statement as libpq takes it: ``$1``, ``$2``… for the values named in ``names``."""

    sql: bytes
    names: tuple[str, ...]


def dollar_sql(sql: str) -> DollarSql | None:
    """``sql`` with psycopg's placeholders as libpq's; None when it holds anything but named
    placeholders and doubled percent signs, or a ``$`` of its own (those stay with the cursor)."""
    if "$" in sql:
        return None
    numbers: dict[str, int] = {}
    plain = True

    def number(match: re.Match[str]) -> str:
        nonlocal plain
        name = match.group("name")
        if match.group(0) == "%%":
            return "%"
        if not name:
            plain = False
            return ""
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    converted = _PLACEHOLDER.sub(number, sql)
    return DollarSql(converted.encode(), tuple(numbers)) if plain else None


class Result:
    """What ``direct.py`` reads of a cursor: ``fetchone``, ``description``, ``rowcount``. The rows
    are read out at once, so that the connection's next statement cannot change them."""

    def __init__(self, rows: list[tuple[Any, ...]], names: tuple[str, ...], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.description = [(name,) for name in names]
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]


class _Statements:
    """One driver connection's adapters and the statements prepared on it."""

    def __init__(self, driver: Any) -> None:
        from psycopg import errors, pq
        from psycopg.adapt import PyFormat, Transformer

        self.driver = driver
        self.transformer = Transformer(driver)
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.auto = PyFormat.AUTO
        self.done = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
        self.tuples_ok = pq.ExecStatus.TUPLES_OK
        self.error_from_result = errors.error_from_result
        self.operational_error = errors.OperationalError
        self.sqlstate = pq.DiagnosticField.SQLSTATE


def run(pooled: Any, statement: DollarSql, parameters: Mapping[str, Any]) -> Result:
    """Run ``statement`` on the pooled psycopg connection, which must be in autocommit. Raises
    psycopg's errors as its cursor would."""
    driver = pooled.driver_connection
    state = pooled.info.get(_STATE)
    if state is None or state.driver is not driver:
        state = pooled.info[_STATE] = _Statements(driver)
    transformer = state.transformer
    pgconn = driver.pgconn
    values = transformer.dump_sequence([parameters[name] for name in statement.names],
                                       [state.auto] * len(statement.names))
    types = tuple(transformer.types or ())
    formats = transformer.formats
    key = (statement.sql, types)
    name = state.names.get(key)
    if name is None and len(state.names) < _PREPARED_LIMIT:
        # Never a name given before: one forgotten by the server is prepared again as itself.
        name = b"bridge_%d" % len(state.names)
        _checked(state, pgconn.prepare(name, statement.sql, types))
        state.names[key] = name
    if name is None:
        result = pgconn.exec_params(statement.sql, values, types, formats)
    else:
        result = pgconn.exec_prepared(name, values, formats)
        if result.error_field(state.sqlstate) == _UNKNOWN_STATEMENT:
            # Deallocated since (psycopg sends DEALLOCATE ALL after a rollback on a connection
            # where it prepared statements of its own): prepared again, once.
            _checked(state, pgconn.prepare(name, statement.sql, types))
            result = pgconn.exec_prepared(name, values, formats)
    _checked(state, result)
    if result.status != state.tuples_ok:
        tuples = result.command_tuples
        return Result([], (), tuples if tuples is not None else -1)
    count = result.ntuples
    transformer.set_pgresult(result)
    rows = transformer.load_rows(0, count, tuple) if count else []
    encoding = driver.info.encoding
    names = tuple((result.fname(i) or b"").decode(encoding) for i in range(result.nfields))
    return Result(rows, names, count)


def _checked(state: _Statements, result: Any) -> None:
    if result.status in state.done:
        return
    if result.error_field(state.sqlstate) is None:
        # libpq's own failure, not the server's answer (the connection lost, mostly): psycopg's
        # cursor raises OperationalError for those, which ``store/db.py`` reads as unavailable.
        message = (result.error_message or state.driver.pgconn.error_message or b"").decode(
            "utf-8", "replace").strip()
        raise state.operational_error(message or "the connection to the database failed")
    raise state.error_from_result(result, encoding=state.driver.info.encoding)
