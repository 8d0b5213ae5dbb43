"""The upgrade that computes SCIM users' comparison keys again (migration 0019), on SQLite and
PostgreSQL: rows written with ``str.lower()`` keys are found by the new lookups afterwards, and
two users whose names now fold to one key are both kept, never merged."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command

from bridge.provisioning.scim_model import name_key
from bridge.store.db import Database


def _insert(connection: sa.Connection, user_id: str, user_name: str) -> None:
    connection.execute(sa.text(
        "INSERT INTO scim_users (id, idp_slug, user_name_key, external_id, active, subject, "
        "resource_json, version, created_at, updated_at) VALUES (:id, 'dev', :key, NULL, "
        ":active, NULL, :resource, 1, 0, 0)"),
        {"id": user_id, "key": user_name.lower(), "active": True,
         "resource": json.dumps({"userName": user_name})})


def _keys(database: Database) -> dict[str, str]:
    with database.engine.begin() as connection:
        rows = connection.execute(sa.text("SELECT id, user_name_key FROM scim_users"))
        return {row.id: row.user_name_key for row in rows}


def test_the_upgrade_recomputes_the_keys_and_merges_no_one(upgrade_url: str) -> None:
    database = Database(upgrade_url)
    try:
        database.upgrade("0018")
        with database.engine.begin() as connection:
            _insert(connection, "u1", "alice@example.com")
            _insert(connection, "u2", "Straße@example.com")       # lower(): straße
            _insert(connection, "u3", "ＢＯＢ@example.com")         # fullwidth: lower() keeps it
            _insert(connection, "u4", "strasse@example.com")      # the fold of u2's name
        database.upgrade()
        keys = _keys(database)
        assert keys["u1"] == "alice@example.com"
        assert keys["u3"] == name_key("ＢＯＢ@example.com") == "bob@example.com"
        # u2's name folds to u4's key, which u4 holds: u2 keeps its old key, both stay.
        assert (keys["u2"], keys["u4"]) == ("straße@example.com", "strasse@example.com")
        config = database._alembic_config()
        with database.engine.begin() as connection:  # and back: the keys the code before computes
            config.attributes["connection"] = connection
            command.downgrade(config, "0018")
        assert _keys(database)["u3"] == "ＢＯＢ@example.com".lower()
    finally:
        database.dispose()
