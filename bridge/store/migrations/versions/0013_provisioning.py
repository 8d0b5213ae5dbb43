"""Deprovisioning pushed by the IdP: SCIM tokens and users, the people an IdP has deactivated,
and the IDs of the security events already received.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provisioning_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_provisioning_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_provisioning_tokens_token_hash"),
    )
    op.create_index("ix_provisioning_tokens_idp_slug", "provisioning_tokens", ["idp_slug"])
    op.create_table(
        "scim_users",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.Column("user_name_key", sa.String(256), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(128), nullable=True),
        sa.Column("resource_json", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scim_users"),
    )
    op.create_index("uq_scim_users_idp_slug_user_name_key", "scim_users",
                    ["idp_slug", "user_name_key"], unique=True)
    op.create_index("ix_scim_users_idp_slug_external_id", "scim_users",
                    ["idp_slug", "external_id"])
    op.create_table(
        "deprovisioned_subjects",
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("idp_slug", "subject", name="pk_deprovisioned_subjects"),
    )
    op.create_table(
        "received_security_events",
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.Column("jti", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("idp_slug", "jti", name="pk_received_security_events"),
    )
    op.create_index("ix_received_security_events_expires_at", "received_security_events",
                    ["expires_at"])


def downgrade() -> None:
    op.drop_table("received_security_events")
    op.drop_table("deprovisioned_subjects")
    op.drop_table("scim_users")
    op.drop_table("provisioning_tokens")
