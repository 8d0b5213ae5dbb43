"""The upgrade that records whose a SCIM token is (migration 0022), on SQLite and PostgreSQL,
with a token in place: it keeps working and belongs to nobody (nothing recorded whose it was); a
token issued from then on with an owner is revoked by the owner's deprovisioning."""

from __future__ import annotations

import sqlalchemy as sa

from bridge.oauth.deprovisioned import deprovision
from bridge.store.models import ProvisioningToken
from bridge.tokens.secrets_util import secret_hash
from tests.upgrades import downgraded_to, row, upgraded_from

_OLD_TOKEN = row("INSERT INTO provisioning_tokens (id, idp_slug, token_hash, created_by, "
                 "created_at, revoked_at, last_used_at) VALUES ('p1', 'dev', :hash, "
                 "'user:sub-alice (Alice)', 0, NULL, NULL)", hash=secret_hash("scim_old"))


def test_the_upgrade_keeps_scim_tokens_ownerless_and_owned_ones_end_with_their_owner(
        upgrade_url: str) -> None:
    with upgraded_from(upgrade_url, "0021", [_OLD_TOKEN]) as database:
        with database.transaction() as session:
            old = session.get(ProvisioningToken, "p1")
            assert old is not None and old.owner_subject is None and old.revoked_at is None
            old.revoked_at = 10.0  # rotated, as issuing does
            session.add(ProvisioningToken(id="p2", idp_slug="dev",
                                          token_hash=secret_hash("scim_new"),
                                          created_by="user:sub-alice (Alice)", created_at=10.0,
                                          owner_idp_slug="dev", owner_subject="sub-alice"))
        with database.transaction() as session:
            deprovision(session, idp_slug="dev", subject="sub-alice", source="event",
                        reason="event_account_disabled", now=1000.0, actor="test")
        with database.transaction() as session:
            assert session.get(ProvisioningToken, "p2").revoked_at == 1000.0  # type: ignore[union-attr]
            assert session.get(ProvisioningToken, "p1").revoked_at == 10.0  # type: ignore[union-attr]
        with downgraded_to(database, "0021") as connection:
            columns = {c["name"]
                       for c in sa.inspect(connection).get_columns("provisioning_tokens")}
            assert "owner_subject" not in columns and "token_hash" in columns
            assert connection.execute(sa.text(
                "SELECT count(*) FROM provisioning_tokens")).scalar() == 2
