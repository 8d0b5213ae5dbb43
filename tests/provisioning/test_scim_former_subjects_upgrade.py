"""The upgrade that adds the subjects SCIM users stood for before a rename (migration 0020), on
SQLite and PostgreSQL, with users and refusals in place: they stay as they were, and a user
stored before it can be renamed and deactivated afterwards, its old name refused too."""

from __future__ import annotations

import json

import sqlalchemy as sa

from bridge.provisioning.scim_subjects import remember_rename, subjects_of
from bridge.store.models import ScimUser
from tests.upgrades import downgraded_to, row, upgraded_from

_ROWS = [
    row("INSERT INTO scim_users (id, idp_slug, user_name_key, external_id, active, subject, "
        "resource_json, version, created_at, updated_at) VALUES ('u1', 'dev', 'alice', NULL, "
        ":active, 'sub-alice', :resource, 1, 0, 0)",
        active=True, resource=json.dumps({"userName": "alice"})),
    row("INSERT INTO deprovisioned_subjects (idp_slug, subject, source, reason, at) "
        "VALUES ('dev', 'sub-bob', 'scim', 'scim_deleted', 0)"),
]


def test_the_upgrade_keeps_users_and_refusals_and_remembers_renames_from_then_on(
        upgrade_url: str) -> None:
    with upgraded_from(upgrade_url, "0019", _ROWS) as database:
        with database.transaction() as session:
            user = session.get(ScimUser, "u1")
            assert user is not None and subjects_of(session, user) == ["sub-alice"]
            remember_rename(session, idp_slug="dev", user_id="u1", before="sub-alice",
                            after="sub-renamed")
            user.subject = "sub-renamed"
        with database.transaction() as session:
            user = session.get(ScimUser, "u1")
            assert user is not None
            assert subjects_of(session, user) == ["sub-renamed", "sub-alice"]
        with database.engine.begin() as connection:
            refused = connection.execute(sa.text(
                "SELECT subject FROM deprovisioned_subjects")).scalars().all()
        assert refused == ["sub-bob"]
        with downgraded_to(database, "0019") as connection:
            assert "scim_former_subjects" not in sa.inspect(connection).get_table_names()
