"""Driver connections kept apart from SQLAlchemy's pool, for the statements of store/direct.py.

Taking a connection from SQLAlchemy's pool and giving it back (its events, its reset, its queue
and locks) cost a refresh about 30 µs of CPU in a request on PostgreSQL and 19 on SQLite, and
on PostgreSQL switching the connection into autocommit and back another 11: together as much as
the statement. ``Database`` runs its direct statements on connections kept here instead. Each is
made through the pool, so that the settings made on connect apply (store/db.py), then detached
from it; on PostgreSQL it is in autocommit for good. They are handed out last in, first out,
each to one caller at a time.

What the pool did for these connections is done here:

- one idle for longer than ``ping_after()`` seconds is pinged before it is handed out, and
  replaced unseen when the server closed it;
- one invalidated (lost during a statement) or left inside a transaction is closed, never handed
  out again;
- ``dispose()`` closes the idle ones, and those in use when they come back;
- a forked child starts with none of its parent's (their sockets and files are the parent's).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection

# A child's copies of its parent's connections: kept referenced, never closed or collected, as
# closing one (or a driver's finalizer doing so) could end the parent's session or lock.
_INHERITED: list[Any] = []


class KeptConnection:
    """What store/direct.py uses of a pooled connection (``PoolProxiedConnection``), over a
    driver connection kept here."""

    __slots__ = ("dbapi_connection", "driver_connection", "info")

    def __init__(self, driver_connection: Any) -> None:
        self.dbapi_connection: Any = driver_connection
        self.driver_connection: Any = driver_connection
        self.info: dict[str, Any] = {}

    def invalidate(self, _error: BaseException | None = None) -> None:
        """Lost: never handed out again (closed as it comes back)."""
        self.dbapi_connection = None


class _Kept:
    __slots__ = ("connection", "driver", "generation", "idle_since", "pid")

    def __init__(self, driver: Any, generation: int) -> None:
        self.connection = KeptConnection(driver)
        self.driver = driver
        self.generation = generation
        self.idle_since = 0.0
        self.pid = os.getpid()


class KeptConnections:
    def __init__(self, engine: Engine, connect: Callable[[], PoolProxiedConnection], *,
                 autocommit: bool, keep: int, ping_after: Callable[[], float | None]) -> None:
        """``connect``: a connection from the pool (failures already translated);
        ``autocommit``: put each in autocommit (PostgreSQL); ``keep``: at most this many idle;
        ``ping_after``: idle seconds after which one is pinged before use, None for never."""
        self._engine = engine
        self._connect = connect
        self._autocommit = autocommit
        self._keep = keep
        self._ping_after = ping_after
        self._in_transaction = _in_transaction_checker(engine.dialect.name)
        self._lock = threading.Lock()
        self._idle: list[_Kept] = []
        self._generation = 0
        os.register_at_fork(after_in_child=functools.partial(_forget_in_child, weakref.ref(self)))

    @contextlib.contextmanager
    def connection(self) -> Iterator[KeptConnection]:
        kept = self._take()
        try:
            yield kept.connection
        finally:
            self._give_back(kept)

    def idle(self) -> int:
        return len(self._idle)

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for kept in idle:
            _close(kept)

    def _take(self) -> _Kept:
        while True:
            with self._lock:
                kept = self._idle.pop() if self._idle else None
            if kept is None:
                return self._new()
            ping_after = self._ping_after()
            if ping_after is None or time.monotonic() - kept.idle_since < ping_after \
                    or self._answers(kept):
                return kept
            _close(kept)

    def _new(self) -> _Kept:
        pooled = self._connect()
        driver = pooled.driver_connection
        try:
            pooled.detach()  # the driver's connection is ours now: the pool forgets it
            if self._autocommit:
                driver.autocommit = True  # type: ignore[union-attr]
        except BaseException:
            with contextlib.suppress(Exception):
                driver.close()  # type: ignore[union-attr]
            raise
        return _Kept(driver, self._generation)

    def _answers(self, kept: _Kept) -> bool:
        try:
            self._engine.dialect.do_ping(kept.driver)
        except self._engine.dialect.loaded_dbapi.Error:
            return False
        return True

    def _give_back(self, kept: _Kept) -> None:
        if kept.connection.dbapi_connection is None or self._in_transaction(kept.driver):
            _close(kept)
            return
        kept.idle_since = time.monotonic()
        with self._lock:
            if kept.generation == self._generation and len(self._idle) < self._keep:
                self._idle.append(kept)
                return
        _close(kept)

    def _forget(self) -> None:
        # In a forked child: the lock may have been held by a thread that is not here.
        self._lock = threading.Lock()
        self._generation += 1
        _INHERITED.extend(self._idle)
        self._idle = []


def _forget_in_child(ref: weakref.ref[KeptConnections]) -> None:
    kept = ref()
    if kept is not None:
        kept._forget()


def _in_transaction_checker(dialect: str) -> Callable[[Any], bool]:
    if dialect == "postgresql":
        from psycopg.pq import TransactionStatus  # the driver of postgresql+psycopg URLs

        return lambda connection: connection.info.transaction_status != TransactionStatus.IDLE
    return lambda connection: bool(connection.in_transaction)  # sqlite3's


def _close(kept: _Kept) -> None:
    if kept.pid != os.getpid():  # the parent's, come back in a forked child
        _INHERITED.append(kept)
        return
    with contextlib.suppress(Exception):
        kept.driver.close()
