"""Pooled connections kept checked out between uses, for the statements of store/direct.py.

Taking a connection from SQLAlchemy's pool and giving it back (its events, its reset, its queue
and locks) cost a refresh about 30 µs of CPU in a request on PostgreSQL and 19 on SQLite, and
on PostgreSQL switching the connection into autocommit and back another 11: together as much as
the statement. ``Database`` runs its direct statements on connections kept here instead: taken
from the pool once and kept checked out, on PostgreSQL in autocommit for good. They are handed
out last in, first out, each to one caller at a time, and there are at most ``keep`` of them,
busy or idle: while every one is busy, a caller gets a connection from the pool for the while
(on PostgreSQL in autocommit until it goes back). Kept connections count as the pool's, so a
process opens no more connections than the pool allows, and the pool's figures show them as
checked out.

What the pool's check-out and check-in did for these connections is done here:

- one idle for longer than ``ping_after()`` seconds is pinged before it is handed out, and
  replaced unseen when the server closed it;
- one invalidated (lost during a statement) or left inside a transaction is closed, never handed
  out again;
- ``dispose()`` closes the idle ones, and those in use when they come back;
- a forked child starts with none of its parent's, and closes none of them (their sockets and
  files are the parent's).
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
# closing one (or the pool's finalizer doing so) could end the parent's session or lock.
_INHERITED: list[Any] = []


class _Kept:
    __slots__ = ("epoch", "generation", "idle_since", "pooled")

    def __init__(self, pooled: PoolProxiedConnection, generation: int, epoch: int) -> None:
        self.pooled = pooled
        self.generation = generation  # of dispose(): one taken before a dispose is closed
        self.epoch = epoch  # of forks: one taken before a fork is the parent's
        self.idle_since = 0.0


class KeptConnections:
    def __init__(self, engine: Engine, connect: Callable[[], PoolProxiedConnection], *,
                 autocommit: bool, keep: int, ping_after: Callable[[], float | None]) -> None:
        """``connect``: a connection from the pool (failures already translated);
        ``autocommit``: put each in autocommit (PostgreSQL); ``keep``: at most this many, busy
        or idle; ``ping_after``: idle seconds after which one is pinged before use, None for
        never."""
        self._engine = engine
        self._connect = connect
        self._autocommit = autocommit
        self._keep = keep
        self._ping_after = ping_after
        self._in_transaction = _in_transaction_checker(engine.dialect.name)
        self._lock = threading.Lock()
        self._idle: list[_Kept] = []
        self._busy = 0  # handed out and not yet back, of this process
        self._generation = 0
        self._epoch = 0
        os.register_at_fork(after_in_child=functools.partial(_forget_in_child, weakref.ref(self)))

    @contextlib.contextmanager
    def connection(self) -> Iterator[PoolProxiedConnection]:
        kept = self._take()
        if kept is None:
            with self._borrowed() as pooled:
                yield pooled
            return
        try:
            yield kept.pooled
        finally:
            self._give_back(kept)

    def idle(self) -> int:
        return len(self._idle)

    def busy(self) -> int:
        return self._busy

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for kept in idle:
            self._discard(kept)

    def _take(self) -> _Kept | None:
        """A kept connection, or None while ``keep`` of them are busy."""
        while True:
            with self._lock:
                if self._idle:
                    kept = self._idle.pop()
                elif self._busy >= self._keep:
                    return None
                else:
                    kept = None
                self._busy += 1
                # Read here, not after connecting: a dispose() or fork meanwhile must see to it.
                generation, epoch = self._generation, self._epoch
            if kept is None:
                try:
                    return self._new(generation, epoch)
                except BaseException:
                    self._release(epoch)
                    raise
            ping_after = self._ping_after()
            usable = False
            try:
                usable = ping_after is None or time.monotonic() - kept.idle_since < ping_after \
                    or self._answers(kept)
            finally:
                if not usable:  # dead, or the ping was interrupted: its place is freed
                    self._release(kept.epoch)
                    self._discard(kept)
            if usable:
                return kept

    def _release(self, epoch: int) -> None:
        with self._lock:
            if epoch == self._epoch:
                self._busy -= 1

    def _new(self, generation: int, epoch: int) -> _Kept:
        pooled = self._connect()
        if self._autocommit:
            try:
                pooled.driver_connection.autocommit = True  # type: ignore[union-attr]
            except BaseException:
                pooled.invalidate()  # closed: never back in the pool half switched
                raise
        return _Kept(pooled, generation, epoch)

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[PoolProxiedConnection]:
        """The pool's connection, while every kept one is busy; on PostgreSQL in autocommit for
        the while, and out of it before it goes back (or invalidated, when it cannot be)."""
        pooled = self._connect()
        try:
            driver: Any = pooled.driver_connection
            if self._autocommit:
                driver.autocommit = True
            try:
                yield pooled
            finally:
                if self._autocommit and pooled.dbapi_connection is not None:
                    try:
                        driver.autocommit = False
                    except Exception as error:  # noqa: BLE001 - whatever it is, it goes
                        pooled.invalidate(error)
        finally:
            pooled.close()

    def _answers(self, kept: _Kept) -> bool:
        dbapi_connection = kept.pooled.dbapi_connection
        if dbapi_connection is None:
            return False
        try:
            self._engine.dialect.do_ping(dbapi_connection)
        except self._engine.dialect.loaded_dbapi.Error:
            return False
        return True

    def _give_back(self, kept: _Kept) -> None:
        pooled = kept.pooled
        usable = pooled.dbapi_connection is not None \
            and not self._in_transaction(pooled.driver_connection)
        kept.idle_since = time.monotonic()
        with self._lock:
            if kept.epoch == self._epoch:
                self._busy -= 1
                if usable and kept.generation == self._generation:
                    self._idle.append(kept)
                    return
        self._discard(kept)

    def _discard(self, kept: _Kept) -> None:
        if kept.epoch != self._epoch:  # the parent's, come back in a forked child
            _INHERITED.append(kept)
            return
        if kept.pooled.dbapi_connection is not None:  # else invalidated, and back in the pool
            with contextlib.suppress(Exception):
                # Closed, with whatever transaction it was in: the pool makes a new one when
                # the slot is next used.
                kept.pooled.invalidate()

    def _forget(self) -> None:
        # In a forked child: the lock may have been held by a thread that is not here.
        self._lock = threading.Lock()
        self._epoch += 1
        self._busy = 0
        _INHERITED.extend(self._idle)
        self._idle = []


def _forget_in_child(ref: weakref.ref[KeptConnections]) -> None:
    kept = ref()
    if kept is not None:
        kept._forget()


def _in_transaction_checker(dialect: str) -> Callable[[Any], bool]:
    if dialect == "postgresql":
        from psycopg.pq import TransactionStatus  # the driver of postgresql+psycopg URLs

        # libpq's own figure: ``connection.info.transaction_status`` builds two objects to say it.
        idle = int(TransactionStatus.IDLE)
        return lambda connection: connection.pgconn.transaction_status != idle
    return lambda connection: bool(connection.in_transaction)  # sqlite3's
