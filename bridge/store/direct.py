"""The statements of the hottest request paths, run on the database driver's own connection.

SQLAlchemy's execution pipeline (compiled-cache lookup, parameter and result processing, events)
costs about 30 µs of CPU per statement: more than SQLite needs to run a lookup by primary key, and
as much as a round trip to a local PostgreSQL. A refresh, a code exchange and an ACS login run a
handful of fixed statements each, so those are compiled once per dialect and shape here and
handed straight to the driver. The transaction around them is SQLAlchemy's
(``Database.connection()``) or, for work that runs nothing but these statements, the driver
connection's own (``Database.driver_transaction()``, ``DriverConnection`` below), and reads and
one-statement writes run outside any transaction (``Database.lookup()``,
``Database.single_statement()``): SQLAlchemy's Connection and Transaction objects cost 7 to
40 µs of CPU each time, as much as SQLite's whole rotation of a refresh token. Those pooled
connections are kept checked out between uses (store/kept_connections.py), except a
PostgreSQL ``driver_transaction()``'s, which goes back to the pool.

What the pipeline did and still happens here: NUL characters are refused (as ``store/db.py``
does for every other statement), driver errors become SQLAlchemy's exception classes (so callers
catch ``IntegrityError`` and ``_unavailable_when_disconnected`` sees a lost connection), and a
connection that was lost is invalidated. What is not done: type processing of values. The hot
tables hold strings, integers and floats, which both drivers pass through unchanged; the storage
conformance suite runs every statement here on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Dialect, exc
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import Insert
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from bridge.errors import InvalidValue, StoreUnavailable


@dataclass(frozen=True)
class _Compiled:
    # Held so that its id() cannot be given to another statement while the entry lives.
    statement: ClauseElement
    sql: str
    # The bind names in the order of the placeholders, for positional paramstyles (SQLite's ?);
    # None for named ones (psycopg's %(name)s).
    order: tuple[str, ...] | None


class DriverConnection:
    """A pooled driver connection (kept checked out between uses: store/kept_connections.py),
    in a transaction of its own (``Database.driver_transaction()``) or in none, with what
    ``execute`` needs of a SQLAlchemy ``Connection``."""

    def __init__(self, dialect: Dialect, pooled: PoolProxiedConnection) -> None:
        self.dialect = dialect
        self.connection = pooled

    def invalidate(self, error: BaseException) -> None:
        self.connection.invalidate(error)


class Runner(Protocol):
    """A SQLAlchemy ``Connection`` or a ``DriverConnection``."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def connection(self) -> Any: ...

    def invalidate(self, error: BaseException) -> None: ...


_compiled: dict[tuple[int, str, tuple[str, ...]], _Compiled] = {}
# The hot paths have a few dozen statements and shapes; more means statements built per call,
# which are compiled anew after the cache is emptied rather than kept for ever.
_CACHE_LIMIT = 512
_row_types: dict[tuple[str, ...], type] = {}
# A statement's SQL on one database fixes the names of the columns it returns (every statement
# here names them; the same SQL may name them otherwise on another database, which folds an
# unquoted alias to lower case): psycopg builds its description anew each time it is read, about
# 1.5 µs a column. A row of another length (a ``SELECT *`` across a change of the table) names
# its columns afresh.
_row_type_of_sql: dict[tuple[str, str], type] = {}
# Where a pooled PostgreSQL connection keeps its cursor (``PoolProxiedConnection.info`` lives as
# long as the driver's connection does).
_CURSOR = "bridge.direct.cursor"


def _compile(connection: Runner, statement: ClauseElement,
             parameters: Mapping[str, Any]) -> _Compiled:
    dialect = connection.dialect
    # An INSERT without explicit values lists the columns it is given: its SQL depends on them.
    keys = tuple(parameters) if isinstance(statement, Insert) else ()
    cache_key = (id(statement), dialect.name, keys)
    found = _compiled.get(cache_key)
    if found is None or found.statement is not statement:
        compiled = statement.compile(dialect=dialect,
                                     column_keys=list(keys) if keys else None)
        assert isinstance(compiled, SQLCompiler)
        order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        found = _Compiled(statement, compiled.string, order)
        if len(_compiled) >= _CACHE_LIMIT:
            _compiled.clear()
        _compiled[cache_key] = found
    return found


def execute(connection: Runner, statement: ClauseElement, parameters: Mapping[str, Any]) -> Any:
    """Run ``statement`` with ``parameters`` on the driver's connection underneath
    ``connection``, in whatever transaction it is in; the driver's cursor, on PostgreSQL the
    connection's own (``_cursor``): read its results before the connection's next statement."""
    return _run(connection, statement, parameters)[0]


def _run(connection: Runner, statement: ClauseElement,
         parameters: Mapping[str, Any]) -> tuple[Any, _Compiled]:
    for value in parameters.values():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidValue("value_invalid", "A value in the request holds a NUL character.")
    compiled = _compile(connection, statement, parameters)
    bound: Any = parameters if compiled.order is None else tuple(
        parameters[name] for name in compiled.order)
    dbapi = connection.dialect.loaded_dbapi
    try:
        cursor = _cursor(connection)
        cursor.execute(compiled.sql, bound)
    except dbapi.Error as error:
        raise _translated(connection, error, compiled.sql, bound) from error
    return cursor, compiled


def _cursor(connection: Runner) -> Any:
    """On PostgreSQL, the pooled connection's cursor, made once per driver connection and used
    by each of its statements in turn (a pooled connection serves one thread at a time): a
    cursor made per statement cost psycopg about 9 µs, its adapters looked up afresh. psycopg's
    cursor holds only rows already received. On SQLite a new cursor per statement, as the
    driver's ``execute`` makes: a kept cursor would keep a statement whose first row was read
    unfinished, and with it its read snapshot, while the connection idles in the pool."""
    pooled = connection.connection
    driver = pooled.driver_connection
    if connection.dialect.name != "postgresql":
        return driver.cursor()
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.connection is not driver:
        cursor = pooled.info[_CURSOR] = driver.cursor()
    return cursor


def finish(connection: DriverConnection, *, commit: bool) -> None:
    """End a ``DriverConnection``'s transaction: commit it, or roll it back."""
    dbapi_connection: Any = connection.connection.dbapi_connection
    if dbapi_connection is None:  # invalidated: lost, with whatever it had not committed
        if commit:
            raise StoreUnavailable("temporarily_unavailable",
                                   "The database is unavailable; retry shortly.")
        return
    try:
        if commit:
            dbapi_connection.commit()
        else:
            dbapi_connection.rollback()
    except connection.dialect.loaded_dbapi.Error as error:
        raise _translated(connection, error, "COMMIT" if commit else "ROLLBACK", ()) from error


def _translated(connection: Runner, error: Any, sql: str, bound: Any) -> exc.StatementError:
    """The driver's ``error`` as SQLAlchemy's exception class; a lost connection invalidated."""
    lost = connection.dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
    if lost:
        connection.invalidate(error)
    return exc.DBAPIError.instance(sql, bound, error, connection.dialect.loaded_dbapi.Error,
                                   connection_invalidated=lost)


def first(connection: Runner, statement: ClauseElement, parameters: Mapping[str, Any]) -> Any:
    """The first row ``statement`` returns, with its columns as attributes; None when none."""
    cursor, compiled = _run(connection, statement, parameters)
    values = cursor.fetchone()
    if values is None:
        return None
    key = (connection.dialect.name, compiled.sql)
    row_type = _row_type_of_sql.get(key)
    if row_type is None or len(row_type._fields) != len(values):  # type: ignore[attr-defined]
        names = tuple(column[0] for column in cursor.description)
        row_type = _row_types.get(names)
        if row_type is None:
            row_type = _row_types[names] = namedtuple("Row", names)
        if len(_row_type_of_sql) >= _CACHE_LIMIT:
            _row_type_of_sql.clear()
        _row_type_of_sql[key] = row_type
    return row_type(*values)


def rowcount(connection: Runner, statement: ClauseElement, parameters: Mapping[str, Any]) -> int:
    """How many rows ``statement`` changed."""
    return int(execute(connection, statement, parameters).rowcount)
