"""DPoP's storage, the same on SQLite and PostgreSQL: a proof is used once across every connection
(every node), also when two use it at the same moment; a login bound to a key rotates only with
that key, and a refusal for the wrong key (or none) writes nothing and ends nothing."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from bridge.errors import TokenError
from bridge.store.db import Database
from bridge.store.models import RefreshFamily
from bridge.tokens import refresh
from bridge.tokens.dpop_replay import use_proof

pytestmark = pytest.mark.conformance

NOW = 1_800_000_000.0
KEY = b"k" * 32
JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
OTHER_JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
HOLD_SECONDS = 0.3


def _use(database: Database, jti: str, jkt: str = JKT) -> bool:
    with database.connection() as connection:
        return use_proof(connection, jkt=jkt, jti=jti, expires_at=NOW + 90)


def test_a_proof_is_used_once_and_its_jti_belongs_to_its_key(database: Database) -> None:
    assert _use(database, "jti-1") is True
    assert _use(database, "jti-1") is False
    # The same jti under another key is another proof.
    assert _use(database, "jti-1", OTHER_JKT) is True


def test_a_refused_duplicate_leaves_the_transaction_usable(database: Database) -> None:
    assert _use(database, "jti-2") is True
    with database.connection() as connection:
        assert use_proof(connection, jkt=JKT, jti="jti-2", expires_at=NOW + 90) is False
        # On PostgreSQL an error would have aborted the transaction: this must still work.
        assert use_proof(connection, jkt=JKT, jti="jti-3", expires_at=NOW + 90) is True


def test_of_two_concurrent_uses_of_one_proof_one_wins(database: Database) -> None:
    outcomes: list[bool | None] = [None, None]
    written = threading.Event()

    def first() -> None:
        with database.connection() as connection:
            outcomes[0] = use_proof(connection, jkt=JKT, jti="raced", expires_at=NOW + 90)
            written.set()
            time.sleep(HOLD_SECONDS)  # the second racer's insert waits on this one

    def second() -> None:
        outcomes[1] = _use(database, "raced")

    racer = threading.Thread(target=first)
    racer.start()
    assert written.wait(30)
    other = threading.Thread(target=second)
    other.start()
    racer.join(30)
    other.join(30)
    assert outcomes == [True, False]


def _bound_family(database: Database) -> refresh.Rotation:
    with database.connection() as connection:
        return refresh.store_family(connection, refresh.new_family(
            now=NOW, client_id="demo", subject="s-1", idp_slug="dev", claims_json="{}",
            scope="openid", auth_time=int(NOW), session_index=None, name_id=None,
            expires_at=NOW + 3600, dpop_jkt=JKT))


def _rotate(database: Database, token: str, jkt: str | None, now: float = NOW + 1
            ) -> refresh.Rotation:
    with database.connection() as connection:
        return refresh.rotate(connection, token=token, client_id="demo", now=now,
                              policy=refresh.RefreshPolicy(), successor_key=KEY, dpop_jkt=jkt)


@pytest.mark.parametrize("presented", [None, OTHER_JKT])
def test_a_bound_token_without_its_key_is_refused_and_ends_nothing(
        database: Database, presented: str | None) -> None:
    first = _bound_family(database)
    rotated = _rotate(database, first.refresh_token, JKT)
    for token in (rotated.refresh_token, first.refresh_token):  # live, and already used
        with pytest.raises(TokenError) as refused:
            _rotate(database, token, presented, now=NOW + 2)
        assert refused.value.code == "refresh_token_key_mismatch"
        assert not isinstance(refused.value, refresh.ReuseDetected)
    with database.transaction() as session:
        family = session.scalars(select(RefreshFamily)).one()
        assert family.revoked_at is None and family.dpop_jkt == JKT
    # The holder of the key carries on with the live token.
    assert _rotate(database, rotated.refresh_token, JKT, now=NOW + 3).family.id == first.family.id


def test_one_statement_rotation_leaves_a_wrong_key_to_the_step_by_step_refusal(
        database: Database) -> None:
    first = _bound_family(database)
    with database.single_statement() as connection:
        assert refresh.rotate_at_once(connection, token=first.refresh_token, client_id="demo",
                                      now=NOW + 1, policy=refresh.RefreshPolicy(),
                                      successor_key=KEY, dpop_jkt=OTHER_JKT) is None
    assert _rotate(database, first.refresh_token, JKT).family.id == first.family.id
