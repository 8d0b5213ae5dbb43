"""DPoP authorization code binding (RFC 9449 §10): the key a login request named with dpop_jkt,
carried from the outstanding request to its code.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authn_requests") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(64), nullable=True))
    with op.batch_alter_table("authorization_codes") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(64), nullable=True))


def downgrade() -> None:
    # Codes live a minute: the bound ones (and the requests that would make more) go, rather than
    # becoming usable without their key.
    op.execute("DELETE FROM authorization_codes WHERE dpop_jkt IS NOT NULL")
    op.execute("DELETE FROM authn_requests WHERE dpop_jkt IS NOT NULL")
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("authn_requests") as batch:
        batch.drop_column("dpop_jkt")
