"""The upgrade that records whose an admin API token is and when lifted refusals began
(migration 0021), on SQLite and PostgreSQL, with tokens and refusals in place: the tokens keep
working and belong to nobody (nothing recorded whose they were), a deprovisioning from then on
ends the tokens of the person it names, and a refusal stored before the upgrade, lifted after it,
leaves its start behind."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from bridge.admin.access import AdminAccess
from bridge.clock import FixedClock
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.deprovisioned import deprovision, ended_by_a_lifted_refusal, reinstate
from bridge.store.models import AdminToken
from bridge.tokens.secrets_util import secret_hash
from tests.upgrades import downgraded_to, registry, row, upgraded_from

_ROWS = [
    row("INSERT INTO admin_tokens (id, token_hash, name, created_by, created_at, expires_at, "
        "revoked_at, last_used_at) VALUES ('t1', :hash, 'old', 'user:sub-alice (Alice)', 0, "
        "5000, NULL, NULL)", hash=secret_hash("bat_old")),
    row("INSERT INTO deprovisioned_subjects (idp_slug, subject, source, reason, at) "
        "VALUES ('dev', 'sub-bob', 'scim', 'scim_deactivated', 500)"),
]


def test_the_upgrade_keeps_tokens_ownerless_and_owned_ones_end_with_their_owner(
        upgrade_url: str, dev_idp: DevIdp, idp_dir: Path) -> None:
    with upgraded_from(upgrade_url, "0020", _ROWS) as database:
        clock = FixedClock(1000.0)
        access = AdminAccess(database, clock, registry(database, clock, idp_dir))
        old = access.authenticate_token("bat_old")
        assert old is not None and old.owner is None
        owned = access.create_token("new", expires_in=3600, actor="user:sub-alice (Alice)",
                                    owner=("dev", "sub-alice"))[1]
        assert access.authenticate_token(owned) is not None
        with database.transaction() as session:
            deprovision(session, idp_slug="dev", subject="sub-alice", source="scim",
                        reason="scim_deactivated", now=1000.0, actor="test")
        assert access.authenticate_token(owned) is None
        assert access.authenticate_token("bat_old") is not None
        with database.transaction() as session:
            assert session.get(AdminToken, "t1") is not None
            assert reinstate(session, idp_slug="dev", subject="sub-bob", now=1000.0,
                             actor="test")
        with database.transaction() as session:
            assert ended_by_a_lifted_refusal(session, idp_slug="dev", subject="sub-bob",
                                             issued_at=499)
            assert not ended_by_a_lifted_refusal(session, idp_slug="dev", subject="sub-bob",
                                                 issued_at=1001)
        with downgraded_to(database, "0020") as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("admin_tokens")}
            assert "owner_subject" not in columns and "name" in columns
            assert "lifted_refusals" not in sa.inspect(connection).get_table_names()
            assert connection.execute(sa.text(
                "SELECT count(*) FROM admin_tokens")).scalar() == 2
