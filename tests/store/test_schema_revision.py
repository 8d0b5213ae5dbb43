"""Whether the schema is current is answered without alembic (store/db.py): the newest migration
read from the files must be alembic's own head, and the database's revision read by SQL must be
the one alembic recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bridge.errors import Misconfigured
from bridge.store.db import Database

pytestmark = pytest.mark.conformance


def test_the_newest_migration_is_alembics_head(database: Database) -> None:
    alembic_head = ScriptDirectory.from_config(database._alembic_config()).get_current_head()
    assert alembic_head is not None
    assert database.head_revision() == alembic_head


def test_the_revision_read_by_sql_is_the_one_alembic_recorded(database: Database) -> None:
    with database.engine.connect() as connection:
        recorded = MigrationContext.configure(connection).get_current_revision()
    assert recorded == database.head_revision()
    assert database.current_revision() == recorded
    database.require_migrated()  # nothing to say


def test_a_database_never_migrated_has_no_revision_and_is_refused(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path}/empty.db")
    try:
        assert empty.current_revision() is None
        with pytest.raises(Misconfigured, match="revision none"):
            empty.require_migrated()
        empty.upgrade("0018")
        assert empty.current_revision() == "0018"
        with pytest.raises(Misconfigured, match="run `bridge db upgrade`"):
            empty.require_migrated()
    finally:
        empty.dispose()
