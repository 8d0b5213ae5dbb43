"""Purging expired rows: bounded batches, nothing live touched."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from bridge.store.db import Database
from bridge.store.maintenance import CODE_GRACE_SECONDS, purge_expired
from bridge.store.models import (
    AuthnRequestRecord,
    AuthorizationCode,
    ConsumedAssertion,
    DpopProof,
    ReceivedSecurityEvent,
    RefreshFamily,
    RefreshToken,
)


def _count(database: Database, model: type) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_purge_deletes_only_expired_rows_in_batches(database: Database) -> None:
    now = time.time()
    with database.transaction() as session:
        for i in range(5):
            for expires in (now - 10, now + 600):
                tag = f"{i}-{expires > now}"
                session.add(ConsumedAssertion(idp_entity_id="https://idp", assertion_id=f"a{tag}",
                                              expires_at=expires))
                session.add(ReceivedSecurityEvent(idp_slug="dev", jti=f"j{tag}",
                                                  expires_at=expires))
                session.add(DpopProof(proof_hash=f"p{tag}", expires_at=expires))
                session.add(AuthnRequestRecord(
                    id=f"r{tag}", idp_slug="dev", client_id="demo", redirect_uri="x", scope="",
                    browser_hash="h", created_at=now, expires_at=expires))
                session.add(AuthorizationCode(
                    code_hash=f"c{tag}", client_id="demo", redirect_uri="x", scope="", subject="s",
                    idp_slug="dev", claims_json="{}", auth_time=0, created_at=now,
                    expires_at=expires - CODE_GRACE_SECONDS if expires < now else expires))
                session.add(RefreshFamily(
                    id=f"f{tag}", client_id="demo", subject="s", idp_slug="dev", claims_json="{}",
                    scope="", auth_time=0, created_at=now, expires_at=expires))
                session.flush()
                session.add(RefreshToken(token_hash=f"t{tag}", family_id=f"f{tag}", created_at=now))

    counts = purge_expired(database, now=now, batch_size=2)

    assert counts == {"authn_requests": 5, "consumed_assertions": 5, "dpop_proofs": 5,
                      "authorization_codes": 5, "refresh_families": 5, "admin_sessions": 0,
                      "test_logins": 0, "received_security_events": 5}
    for model in (ConsumedAssertion, AuthnRequestRecord, AuthorizationCode, RefreshFamily,
                  RefreshToken, DpopProof, ReceivedSecurityEvent):
        assert _count(database, model) == 5, model
    assert purge_expired(database, now=now)["consumed_assertions"] == 0
