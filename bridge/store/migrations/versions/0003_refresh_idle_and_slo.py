"""Refresh families remember their last use (idle timeout) and the SAML NameID (Single Logout).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_families") as table:
        table.add_column(sa.Column("name_id", sa.Text(), nullable=True))
        table.add_column(sa.Column("last_used_at", sa.Double(), nullable=True))
    with op.batch_alter_table("authorization_codes") as table:
        table.add_column(sa.Column("name_id", sa.Text(), nullable=True))
    op.create_index("ix_refresh_families_session_index", "refresh_families", ["idp_slug",
                                                                             "session_index"])


def downgrade() -> None:
    op.drop_index("ix_refresh_families_session_index", table_name="refresh_families")
    with op.batch_alter_table("authorization_codes") as table:
        table.drop_column("name_id")
    with op.batch_alter_table("refresh_families") as table:
        table.drop_column("last_used_at")
        table.drop_column("name_id")
