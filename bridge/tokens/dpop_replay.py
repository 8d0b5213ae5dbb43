"""Single use of DPoP proofs (RFC 9449 §11.1), across every node: a proof enters ``dpop_proofs``
under a hash of its key and ``jti``, and a second entry of the same proof finds the row taken."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from bridge.store import direct
from bridge.store.models import DpopProof


def _insert_once(insert: Any) -> Any:
    # One statement that never raises on a duplicate, so it leaves the caller's transaction
    # usable; RETURNING, not rowcount: the drivers do not report a row count for it.
    return (insert(DpopProof).on_conflict_do_nothing(index_elements=["proof_hash"])
            .returning(DpopProof.proof_hash))


_INSERT_PROOF = {"postgresql": _insert_once(postgresql.insert),
                 "sqlite": _insert_once(sqlite.insert)}


def proof_hash(jkt: str, jti: str) -> str:
    # jti is unique per key (§4.2): two clients' proofs never collide by choosing the same jti.
    return hashlib.sha256(f"{jkt}\n{jti}".encode()).hexdigest()


def use_proof(connection: direct.Runner, *, jkt: str, jti: str, expires_at: float) -> bool:
    """Enter the proof; False when it was entered before (by this node or another)."""
    values = {"proof_hash": proof_hash(jkt, jti), "expires_at": expires_at}
    return direct.first(connection, _INSERT_PROOF[connection.dialect.name], values) is not None
