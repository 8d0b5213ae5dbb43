"""DPoP (RFC 9449): the proofs seen, for single use across nodes, and the key a public client's
login is bound to.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dpop_proofs",
        sa.Column("proof_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("proof_hash", name="pk_dpop_proofs"),
    )
    op.create_index("ix_dpop_proofs_expires_at", "dpop_proofs", ["expires_at"])
    with op.batch_alter_table("refresh_families") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(64), nullable=True))


def downgrade() -> None:
    # The previous schema cannot hold a binding: a bound login would become usable with its
    # refresh token alone. End those logins instead.
    op.execute("DELETE FROM refresh_tokens WHERE family_id IN "
               "(SELECT id FROM refresh_families WHERE dpop_jkt IS NOT NULL)")
    op.execute("DELETE FROM refresh_families WHERE dpop_jkt IS NOT NULL")
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("dpop_jkt")
    op.drop_index("ix_dpop_proofs_expires_at", table_name="dpop_proofs")
    op.drop_table("dpop_proofs")
