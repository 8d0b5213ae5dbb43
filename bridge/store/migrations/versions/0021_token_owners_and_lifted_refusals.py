"""Whose admin API token it is: the IdP and subject of the admin session that made it (or of the
token that made it), so that deprovisioning that person ends their tokens too; and when the last
lifted refusal of a person began, so that an access token of no login it ended stays ended
(docs/decisions/0023-deprovisioning-by-the-idp.md).

A token made by the command line has no owner; so does every token made before this revision:
nothing recorded whose it was. A refusal lifted before it left no trace: the access tokens it
ended have expired since (they live minutes).

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_tokens") as batch:
        batch.add_column(sa.Column("owner_idp_slug", sa.String(63), nullable=True))
        batch.add_column(sa.Column("owner_subject", sa.String(128), nullable=True))
    op.create_index("ix_admin_tokens_owner", "admin_tokens", ["owner_idp_slug", "owner_subject"])
    op.create_table(
        "lifted_refusals",
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("refused_at", sa.Double(), nullable=False),
        sa.Column("lifted_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("idp_slug", "subject", name="pk_lifted_refusals"),
    )


def downgrade() -> None:
    op.drop_table("lifted_refusals")
    op.drop_index("ix_admin_tokens_owner", table_name="admin_tokens")
    with op.batch_alter_table("admin_tokens") as batch:
        batch.drop_column("owner_subject")
        batch.drop_column("owner_idp_slug")
