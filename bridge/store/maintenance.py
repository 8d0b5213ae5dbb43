"""Purging rows whose purpose has passed, in bounded batches so no statement holds locks long.

Replay-cache rows (assertions, security events) live until their message could no longer be
valid; outstanding requests and codes until they expire; DPoP proofs until they are too old
to be accepted; refresh families (with their tokens) until their absolute end.
"""

from __future__ import annotations

from sqlalchemy import delete, inspect, select

from bridge.store.db import Database
from bridge.store.models import (
    AdminSession,
    AuthnRequestRecord,
    AuthorizationCode,
    ConsumedAssertion,
    DpopProof,
    ReceivedSecurityEvent,
    RefreshFamily,
    RefreshToken,
    TestLogin,
)

# Codes are kept a little past expiry so that a late replay is still recognized as one (and
# revokes what the code produced) rather than looking unknown.
CODE_GRACE_SECONDS = 3600


def purge_expired(db: Database, *, now: float, batch_size: int = 1000,
                  max_batches: int = 100) -> dict[str, int]:
    """Delete expired rows, at most ``batch_size`` per statement; return counts per table."""
    targets = [
        ("authn_requests", AuthnRequestRecord, AuthnRequestRecord.id,
         AuthnRequestRecord.expires_at < now),
        ("consumed_assertions", ConsumedAssertion, None, ConsumedAssertion.expires_at < now),
        ("dpop_proofs", DpopProof, DpopProof.proof_hash, DpopProof.expires_at < now),
        ("authorization_codes", AuthorizationCode, AuthorizationCode.code_hash,
         AuthorizationCode.expires_at < now - CODE_GRACE_SECONDS),
        ("refresh_families", RefreshFamily, RefreshFamily.id, RefreshFamily.expires_at < now),
        ("admin_sessions", AdminSession, AdminSession.id_hash, AdminSession.expires_at < now),
        ("test_logins", TestLogin, TestLogin.id, TestLogin.expires_at < now),
        ("received_security_events", ReceivedSecurityEvent, None,
         ReceivedSecurityEvent.expires_at < now),
    ]
    counts: dict[str, int] = {}
    for name, model, key, condition in targets:
        total = 0
        for _ in range(max_batches):
            with db.transaction() as session:
                if key is None:  # a composite primary key: row by row
                    columns = list(inspect(model).primary_key)
                    rows = session.execute(select(*columns).where(condition)
                                           .limit(batch_size)).all()
                    for row in rows:
                        session.execute(delete(model).where(
                            *(column == value for column, value in zip(columns, row, strict=True))))
                    deleted = len(rows)
                else:
                    assert key is not None
                    ids = list(session.scalars(select(key).where(condition).limit(batch_size)))
                    if model is RefreshFamily and ids:
                        session.execute(delete(RefreshToken).where(RefreshToken.family_id.in_(ids)))
                    if ids:
                        session.execute(delete(model).where(key.in_(ids)))
                    deleted = len(ids)
            total += deleted
            if deleted < batch_size:
                break
        counts[name] = total
    return counts
