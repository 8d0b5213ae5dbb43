"""Single use of DPoP proofs (RFC 9449 §11.1), across every node: a proof enters ``dpop_proofs``
under a hash of its key and ``jti``, and a second entry of the same proof finds the row taken."""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from bridge.store.models import DpopProof


def proof_hash(jkt: str, jti: str) -> str:
    # jti is unique per key (§4.2): two clients' proofs never collide by choosing the same jti.
    return hashlib.sha256(f"{jkt}\n{jti}".encode()).hexdigest()


def use_proof(connection: Connection, *, jkt: str, jti: str, expires_at: float) -> bool:
    """Enter the proof; False when it was entered before (by this node or another). One
    statement that never raises on a duplicate, so it leaves the caller's transaction usable."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(DpopProof)
                 .values(proof_hash=proof_hash(jkt, jti), expires_at=expires_at)
                 .on_conflict_do_nothing(index_elements=["proof_hash"])
                 .returning(DpopProof.proof_hash))
    # RETURNING, not rowcount: the driver does not report a row count for this statement.
    return connection.execute(statement).first() is not None
