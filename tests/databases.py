"""Fresh PostgreSQL databases for tests and benchmarks: one per test run (or bench run), created
on the server of an admin URL and dropped at the end, so that runs never see each other's rows.

The tests use ``create_postgres_database`` / ``drop_postgres_database`` on the server of
``BRIDGE_TEST_POSTGRES_URL``; the benchmarks (scripts/bench*) use ``create_database`` /
``drop_database`` on a server they are given."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("BRIDGE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://root@127.0.0.1:5432/test")
IN_CI = bool(os.environ.get("CI"))


def new_database_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url``; its URL."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def create_postgres_database(name: str) -> str:
    """A fresh database; its URL. Skips the test if PostgreSQL is not there (fails it in CI)."""
    try:
        return create_database(POSTGRES_URL, name)
    except sa.exc.OperationalError as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL must be reachable in CI: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")


def drop_postgres_database(name: str) -> None:
    drop_database(POSTGRES_URL, name)
