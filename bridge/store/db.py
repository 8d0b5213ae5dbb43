"""Engine, sessions and migrations. The one place that knows which database we talk to."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

from bridge.errors import InvalidValue, Misconfigured, StoreUnavailable
from bridge.store import direct
from bridge.store.kept_connections import KeptConnections

if TYPE_CHECKING:
    from alembic.config import Config

# alembic (with mako and pygments under it) is imported only to migrate: it weighs about 10 MB
# in every worker, which only needs to know whether the schema is current.

_MIGRATIONS = str(Path(__file__).parent / "migrations")
# A process opens at most 15 connections to PostgreSQL (3 the pool keeps idle, 12 more under
# load). Up to 4 of them stay checked out for store/direct.py's statements
# (store/kept_connections.py), busy or idle, one per thread of a gthread worker; while those
# are all busy, direct statements take others from the pool. Idle, a process holds at most 7.
# (SQLite: the pool's defaults, and the same 4 kept.)
POOL_SIZE = 3
POOL_OVERFLOW = 12
KEPT_CONNECTIONS = 4
_BEGIN_IMMEDIATE = text("BEGIN IMMEDIATE")


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # LIFO: the connection used last goes out next. Its page cache is current; one that sat
        # in the queue while others wrote starts every statement by dropping its cache and
        # reading pages again (about 20 µs a refresh once a burst has grown the pool).
        engine = create_engine(database_url, connect_args={"timeout": 30}, pool_use_lifo=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            # WAL lets readers and the writer proceed together; foreign keys are off by default.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            # We issue BEGIN ourselves (below) instead of letting pysqlite defer it.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            # IMMEDIATE takes the write lock up front: one writer at a time, and no transaction
            # can read a row, lose the lock to another writer and then act on a stale read.
            # Run on the driver (store/direct.py): every transaction pays for this statement.
            direct.execute(connection, _BEGIN_IMMEDIATE, {})

        _refuse_nul_characters(engine)
        return engine
    # LIFO as for SQLite: the busiest connection stays warm (its backend's caches, psycopg's
    # prepared statements), and the rest idle until a burst needs them (then pinged first).
    engine = create_engine(database_url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                           pool_use_lifo=True, isolation_level="READ COMMITTED")
    _read_committed(engine)
    _ping_when_idle(engine)
    _refuse_nul_characters(engine)
    return engine


def _read_committed(engine: Engine) -> None:
    """READ COMMITTED whatever the server's or role's default, on every path: the hot paths
    re-read after waiting for a lock and count on seeing what the winner committed (a stricter
    level fails the loser with a serialization error instead). ``isolation_level`` covers the
    transactions SQLAlchemy and the driver begin; a statement in autocommit (``lookup()``,
    ``single_statement()``) takes the session's default, set here once per connection."""

    @event.listens_for(engine, "connect")
    def _session_default(dbapi_connection, _record):
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        dbapi_connection.autocommit = autocommit


# A pooled connection unused for longer than this is checked before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before use only when it sat idle, where SQLAlchemy's
    ``pool_pre_ping`` checks it every time: that ping was one of a refresh's two round trips.
    A connection in steady use has just proven itself; one that sat idle may have been closed by
    the server, a proxy or a restart, and is replaced here unseen. A connection lost while in
    steady use fails its request (``StoreUnavailable``, a 503 with retry) and empties the pool
    (``_unavailable_when_disconnected``), so a restart costs each node about one request."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()  # the ping's implicit transaction
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool drops this connection and checks out a new one.
            raise exc.DisconnectionError(f"idle connection lost: {type(error).__name__}") from error


def _refuse_nul_characters(engine: Engine) -> None:
    """No text with a NUL character reaches either database. PostgreSQL refuses it (a 500 for
    whatever request carried it: a state, a slug in a path, an admin token's name); SQLite would
    store it. Checks at each input name the field; this one catches every input they miss."""

    @event.listens_for(engine, "before_cursor_execute")
    def _no_nul(_conn, _cursor, _statement, parameters, _context, executemany):
        for row in (parameters if executemany else (parameters,)):
            # A batched INSERT of several ORM rows (insertmanyvalues) passes its values flat.
            values = (row.values() if isinstance(row, dict)
                      else row or () if isinstance(row, list | tuple) else (row,))
            if any(isinstance(value, str) and "\x00" in value for value in values):
                raise InvalidValue("value_invalid",
                                   "A value in the request holds a NUL character.")


class Database:
    """Owns the engine and hands out transactional sessions."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The connections of store/direct.py's statements (on SQLite all of them, on PostgreSQL
        # those outside transactions): kept checked out, in autocommit on PostgreSQL.
        postgresql = self.dialect == "postgresql"
        self._kept = KeptConnections(
            self.engine, self._raw_connection, autocommit=postgresql, keep=KEPT_CONNECTIONS,
            # Read at each use (tests set it); SQLite's connections are files, never pinged.
            ping_after=(lambda: PING_AFTER_IDLE_SECONDS) if postgresql else (lambda: None))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _guarded(self) -> contextlib.AbstractContextManager[None]:
        return _unavailable_when_disconnected(self.engine, self._kept.dispose)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error, all or nothing."""
        with self._guarded(), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """Like ``transaction()`` but a Core connection, for hot paths that run prepared
        statements and need none of the ORM's unit-of-work machinery."""
        with self._guarded(), self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def driver_transaction(self) -> Iterator[direct.DriverConnection]:
        """Like ``connection()``, for work that runs only ``store/direct.py`` statements: a
        pooled driver connection, begun (``BEGIN IMMEDIATE`` on SQLite, on a kept connection; on
        PostgreSQL one from the pool, which the driver begins at the first statement) and
        committed or rolled back on it directly."""
        sqlite = self.dialect == "sqlite"
        with self._guarded(), \
                self._kept.connection() if sqlite else self._pooled() as pooled:
            connection = direct.DriverConnection(self.engine.dialect, pooled)
            if sqlite:
                direct.execute(connection, _BEGIN_IMMEDIATE, {})
            try:
                yield connection
            except BaseException:
                # A rollback that fails (a lost connection) must not hide why we roll back.
                with contextlib.suppress(exc.DBAPIError):
                    direct.finish(connection, commit=False)
                raise
            direct.finish(connection, commit=True)

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[PoolProxiedConnection]:
        pooled = self._raw_connection()
        try:
            yield pooled
        finally:
            pooled.close()  # back to the pool, which rolls back whatever is left

    def _raw_connection(self) -> PoolProxiedConnection:
        """The pool's driver connection. ``engine.connect()`` turns a failure to connect into
        SQLAlchemy's error (a 503 by ``_unavailable_when_disconnected``); the pool's own
        check-out leaves the driver's, so it is turned into the same answer here."""
        try:
            return self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as error:
            raise StoreUnavailable("temporarily_unavailable",
                                   "The database is unavailable; retry shortly.") from error

    @contextlib.contextmanager
    def single_statement(self) -> Iterator[direct.DriverConnection]:
        """For work that is one ``store/direct.py`` statement, atomic by itself: on PostgreSQL
        a kept driver connection in autocommit (no BEGIN and COMMIT, each a round trip of its
        own); on SQLite, which has no round trips to save, a transaction as
        ``driver_transaction()`` gives (its BEGIN IMMEDIATE keeps a write from failing at once,
        unwaited, on a snapshot another writer moved past)."""
        if self.dialect != "postgresql":
            with self.driver_transaction() as connection:
                yield connection
            return
        with self._outside_transactions() as connection:
            yield connection

    @contextlib.contextmanager
    def lookup(self) -> Iterator[direct.DriverConnection]:
        """For reads run through ``store/direct.py``, outside any transaction: no write lock
        taken on SQLite (``driver_transaction()`` would take one up front), no BEGIN and COMMIT
        round trips on PostgreSQL."""
        with self._outside_transactions() as connection:
            yield connection

    @contextlib.contextmanager
    def _outside_transactions(self) -> Iterator[direct.DriverConnection]:
        """A kept driver connection, each statement committed on its own: SQLite's connections
        are so already (we issue BEGIN ourselves), the kept ones of psycopg are in autocommit."""
        with self._guarded(), self._kept.connection() as pooled:
            yield direct.DriverConnection(self.engine.dialect, pooled)

    def serialize(self, session: Session, name: str) -> None:
        """Hold a lock named ``name`` until ``session``'s transaction ends, for work that must not
        run on two nodes at once even when there is no row yet to lock (FOR UPDATE locks nothing
        on an empty table). SQLite's transactions already run one at a time (BEGIN IMMEDIATE)."""
        if self.dialect == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except exc.SQLAlchemyError:
            return False

    # --- migrations ----------------------------------------------------------------------------

    def _alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", _MIGRATIONS)
        return config

    def upgrade(self, revision: str = "head") -> None:
        from alembic import command

        config = self._alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def head_revision(self) -> str | None:
        return _newest_migration()

    def require_migrated(self) -> None:
        """Refuse to serve an un-migrated database, naming the command that fixes it."""
        try:
            current = self.current_revision()
        except exc.SQLAlchemyError as error:
            raise Misconfigured(f"database_url: cannot connect to the database ({error.__class__.__name__}: "
                              f"{str(error).splitlines()[0][:200]})") from None
        head = self.head_revision()
        if current != head:
            raise Misconfigured(
                f"database: schema is at revision {current or 'none'}, this version needs {head}; "
                "run `bridge db upgrade` (with the same BRIDGE_CONFIG / BRIDGE_DATABASE_URL)"
            )

    def kept(self) -> tuple[int, int]:
        """The kept connections (store/kept_connections.py) of this process: (busy, idle)."""
        return self._kept.busy(), self._kept.idle()

    def dispose(self) -> None:
        self._kept.dispose()
        self.engine.dispose()


_REVISION = re.compile(r'^revision = "(\w+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision = "(\w+)"$', re.MULTILINE)


def _newest_migration() -> str | None:
    """The revision no other migration builds on, read from the migration files themselves
    (one chain: tests/store/test_schema_revision.py checks it against alembic's own answer)."""
    revisions, bases = set(), set()
    for path in (Path(_MIGRATIONS) / "versions").glob("[0-9]*.py"):
        source = path.read_text(encoding="utf-8")
        revisions.update(_REVISION.findall(source))
        bases.update(_DOWN_REVISION.findall(source))
    heads = revisions - bases
    return heads.pop() if len(heads) == 1 else None


@contextlib.contextmanager
def _unavailable_when_disconnected(engine: Engine, dispose_kept: Callable[[], None]
                                   ) -> Iterator[None]:
    """A lost or unreachable database is ``StoreUnavailable`` (503, retry), not a 500. A lost
    connection empties the pool and the kept connections: the others were most likely lost with
    it (a restart), and the idle check (``_ping_when_idle``) does not look at connections in
    steady use."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as error:
        if error.connection_invalidated:
            # The kept ones first: checked in, the pool's dispose closes them and counts them
            # out; the other way round the pool would count them as free twice.
            dispose_kept()
            engine.pool.dispose()
        if _is_connection_problem(error):
            raise StoreUnavailable("temporarily_unavailable",
                                   "The database is unavailable; retry shortly.") from error
        raise


def _is_connection_problem(error: exc.DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    text = str(error.orig).lower() if error.orig is not None else str(error).lower()
    markers = ("connection", "could not connect", "server closed", "terminating", "timeout",
               "database is locked", "the database system is")
    return any(marker in text for marker in markers)
