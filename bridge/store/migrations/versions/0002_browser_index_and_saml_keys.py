"""Find a browser's outstanding requests; store the SP's SAML encryption keys.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_authn_requests_browser_hash", "authn_requests", ["browser_hash"])
    op.create_table(
        "saml_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("retired_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_saml_keys"),
    )


def downgrade() -> None:
    op.drop_table("saml_keys")
    op.drop_index("ix_authn_requests_browser_hash", table_name="authn_requests")
