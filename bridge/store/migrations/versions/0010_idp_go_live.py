"""Staged go-live of API-managed IdPs (docs/decisions/0025-draft-idps-and-staged-go-live.md).

``idps`` gains ``state`` (draft: no metadata yet; testing: metadata in force, not offered to
users; live: offered) and ``tested_version_id`` (the metadata version a passing test login was
seen with). Every IdP stored before was offered to users: it stays live.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idps") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="live"))
        batch.add_column(sa.Column("tested_version_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    # The previous schema offers every IdP with metadata: drafts (none) would not load anyway,
    # IdPs still in testing would go live, so they go with their state.
    op.execute("DELETE FROM idps WHERE state <> 'live'")
    with op.batch_alter_table("idps") as batch:
        batch.drop_column("tested_version_id")
        batch.drop_column("state")
