"""Tests of a migration with rows in place. Each starts from an empty database of its own (the
``upgrade_url`` fixture, on SQLite and PostgreSQL), upgrades it to the revision before the
migration, inserts rows as that revision stored them, upgrades to head and checks what became of
them; some then downgrade again. A test states only its revision, its rows and its checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from bridge.clock import Clock
from bridge.idps.files import load_idp_directory
from bridge.idps.registry import IdpRegistry
from bridge.store.db import Database

# An INSERT as the old revision's schema takes it, and the values of its bind parameters.
Row = tuple[str, Mapping[str, object]]


def row(statement: str, **values: object) -> Row:
    return statement, values


@contextmanager
def upgraded_from(url: str, revision: str, rows: Iterable[Row]) -> Iterator[Database]:
    """The database at ``url`` brought to ``revision``, given ``rows``, then upgraded to head."""
    database = Database(url)
    try:
        database.upgrade(revision)
        with database.engine.begin() as connection:
            for statement, values in rows:
                connection.execute(sa.text(statement), dict(values))
        database.upgrade()
        yield database
    finally:
        database.dispose()


@contextmanager
def downgraded_to(database: Database, revision: str) -> Iterator[sa.Connection]:
    """Downgrade ``database`` to ``revision``; the connection it ran on, in the same transaction,
    for the checks of what the downgrade left."""
    with database.engine.begin() as connection:
        config = database._alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
        yield connection


def registry(database: Database, clock: Clock, idp_dir: Path) -> IdpRegistry:
    """The IdPs of the upgraded database: those of the API in it, and the files in ``idp_dir``
    (the ``dev_idp`` fixture writes ``dev`` there), as a node would register them."""
    now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    return IdpRegistry(database, clock, load_idp_directory(idp_dir, now=now))
