"""OAuth clients managed through the admin API beside those of the settings file
(docs/decisions/0024-managed-clients.md): ``clients`` holds each one's settings, and
``client_secrets`` the SHA-256 of each secret of a confidential one, with the end of the overlap
an old secret keeps after a rotation.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_clients")),
    )
    op.create_index(op.f("ix_clients_updated_at"), "clients", ["updated_at"])
    op.create_table(
        "client_secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE",
                                name=op.f("fk_client_secrets_client_id_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_secrets")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_client_secrets_secret_hash")),
    )
    op.create_index(op.f("ix_client_secrets_client_id"), "client_secrets", ["client_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_client_secrets_client_id"), table_name="client_secrets")
    op.drop_table("client_secrets")
    op.drop_index(op.f("ix_clients_updated_at"), table_name="clients")
    op.drop_table("clients")
