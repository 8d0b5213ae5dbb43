"""Administration: IdPs managed through the API with their metadata history, admin tokens and
sessions, test logins.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idps",
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("metadata_url", sa.Text(), nullable=True),
        sa.Column("metadata_etag", sa.Text(), nullable=True),
        sa.Column("metadata_last_modified", sa.Text(), nullable=True),
        sa.Column("metadata_fetched_at", sa.Double(), nullable=True),
        sa.Column("metadata_fetch_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_idps"),
    )
    op.create_index("ix_idps_updated_at", "idps", ["updated_at"])
    op.create_table(
        "idp_metadata_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("applied_at", sa.Double(), nullable=True),
        sa.Column("applied_by", sa.String(256), nullable=True),
        sa.Column("diff_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idp_metadata_versions"),
    )
    op.create_index("ix_idp_metadata_versions_slug", "idp_metadata_versions", ["slug"])
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_admin_tokens_token_hash"),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_admin_sessions"),
    )
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])
    op.create_table(
        "test_logins",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("started_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_test_logins"),
        sa.UniqueConstraint("request_id", name="uq_test_logins_request_id"),
    )
    op.create_index("ix_test_logins_expires_at", "test_logins", ["expires_at"])
    op.create_index("ix_audit_events_idp_slug_event_at", "audit_events",
                    ["idp_slug", "event", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_idp_slug_event_at", table_name="audit_events")
    for table in ("test_logins", "admin_sessions", "admin_tokens", "idp_metadata_versions", "idps"):
        op.drop_table(table)
