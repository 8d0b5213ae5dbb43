"""Start-up refuses what it cannot serve, and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge.clock import SystemClock
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.services import build_services
from bridge.store.db import Database
from bridge.store.models import Base


def test_unmigrated_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "idp").mkdir()
    settings = load_settings(environ={}, overrides={
        "database_url": f"sqlite:///{tmp_path}/fresh.db",
        "idp_metadata_dir": str(tmp_path / "idp"),
        "instance_dir": str(tmp_path / "instance"),
    })
    with pytest.raises(ConfigError, match="run `bridge db upgrade`"):
        build_services(settings, SystemClock())
    Database(settings.database_url).upgrade()
    bridge = build_services(settings, SystemClock())
    assert bridge.keys.jwks()["keys"]


def test_migrations_match_the_models(migrated_database: Database) -> None:
    with migrated_database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert migrated_database.current_revision() == migrated_database.head_revision()
