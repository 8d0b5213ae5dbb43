"""An admin API token a person made before owners were recorded (migration 0021) names its maker
only in created_by ("user:<subject> (<name>)"). The upgrade to 0022 gives it that owner where
exactly one IdP knows the subject, so deprovisioning the maker ends it and it mints nothing more;
where the IdP cannot be told (no trace of the subject, or two IdPs), it stays without an owner,
as decision 23 documents."""

from __future__ import annotations

from pathlib import Path

from bridge.admin.access import AdminAccess
from bridge.clock import FixedClock
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.deprovisioned import deprovision
from bridge.store.models import AdminToken
from bridge.tokens.secrets_util import secret_hash
from tests.upgrades import registry, row, upgraded_from

_TOKEN = ("INSERT INTO admin_tokens (id, token_hash, name, created_by, created_at, expires_at, "
          "revoked_at, last_used_at) VALUES (:id, :hash, :id, :by, 0, 50000, NULL, NULL)")
_SESSION = ("INSERT INTO admin_sessions (id_hash, kind, subject, name, idp_slug, csrf_token, "
            "created_at, expires_at) VALUES (:id, 'session', :subject, 'A', :idp, 'c', 0, 9000)")
_ROWS = [
    *(row(_TOKEN, id=token_id, by=by, hash=secret_hash(f"bat_{token_id}"))
      for token_id, by in (("alice", "user:sub-alice (Alice (ops))"),
                           ("nobody", "user:sub-gone (Gone)"),
                           ("twice", "user:sub-two (Two)"),
                           ("robot", "token:ci"))),
    *(row(_SESSION, id=session_id, subject=subject, idp=idp)
      for session_id, subject, idp in (("s1", "sub-alice", "dev"), ("s2", "sub-two", "dev"),
                                       ("s3", "sub-two", "other"))),
]


def test_the_upgrade_gives_pre_owner_tokens_the_owner_their_maker_names(
        upgrade_url: str, dev_idp: DevIdp, idp_dir: Path) -> None:
    with upgraded_from(upgrade_url, "0020", _ROWS) as database:
        with database.transaction() as session:
            owners = {t.id: (t.owner_idp_slug, t.owner_subject)
                      for t in session.query(AdminToken)}
        assert owners == {"alice": ("dev", "sub-alice"), "nobody": (None, None),
                          "twice": (None, None), "robot": (None, None)}

        clock = FixedClock(1000.0)
        access = AdminAccess(database, clock, registry(database, clock, idp_dir))
        assert access.authenticate_token("bat_alice") is not None
        with database.transaction() as session:
            deprovision(session, idp_slug="dev", subject="sub-alice", source="event",
                        reason="event_account_disabled", now=1000.0, actor="test")
        # The deactivated maker's token opens nothing, so it mints nothing either.
        assert access.authenticate_token("bat_alice") is None
        with database.transaction() as session:
            assert session.get(AdminToken, "alice").revoked_at == 1000.0  # type: ignore[union-attr]
        assert access.authenticate_token("bat_nobody") is not None
