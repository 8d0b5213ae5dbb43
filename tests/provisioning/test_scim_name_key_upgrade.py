"""The upgrade that computes SCIM users' comparison keys again (migration 0019), on SQLite and
PostgreSQL: rows written with ``str.lower()`` keys are found by the new lookups afterwards, and
two users whose names now fold to one key are both kept, never merged."""

from __future__ import annotations

import json

import sqlalchemy as sa

from bridge.provisioning.scim_model import name_key
from tests.upgrades import Row, downgraded_to, row, upgraded_from


def _user(user_id: str, user_name: str) -> Row:
    return row("INSERT INTO scim_users (id, idp_slug, user_name_key, external_id, active, "
               "subject, resource_json, version, created_at, updated_at) VALUES (:id, 'dev', "
               ":key, NULL, :active, NULL, :resource, 1, 0, 0)",
               id=user_id, key=user_name.lower(), active=True,
               resource=json.dumps({"userName": user_name}))


def _keys(connection: sa.Connection) -> dict[str, str]:
    rows = connection.execute(sa.text("SELECT id, user_name_key FROM scim_users"))
    return {stored.id: stored.user_name_key for stored in rows}


def test_the_upgrade_recomputes_the_keys_and_merges_no_one(upgrade_url: str) -> None:
    users = [_user("u1", "alice@example.com"),
             _user("u2", "Straße@example.com"),       # lower(): straße
             _user("u3", "ＢＯＢ@example.com"),         # fullwidth: lower() keeps it
             _user("u4", "strasse@example.com")]      # the fold of u2's name
    with upgraded_from(upgrade_url, "0018", users) as database:
        with database.engine.begin() as connection:
            keys = _keys(connection)
        assert keys["u1"] == "alice@example.com"
        assert keys["u3"] == name_key("ＢＯＢ@example.com") == "bob@example.com"
        # u2's name folds to u4's key, which u4 holds: u2 keeps its old key, both stay.
        assert (keys["u2"], keys["u4"]) == ("straße@example.com", "strasse@example.com")
        # And back: the keys the code before computes.
        with downgraded_to(database, "0018") as connection:
            assert _keys(connection)["u3"] == "ＢＯＢ@example.com".lower()
