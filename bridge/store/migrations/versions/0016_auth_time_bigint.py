"""auth_time as a 64-bit integer: a login after 2038-01-19 does not fit PostgreSQL's int4.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# Every table that keeps a login's auth_time.
TABLES = ("authorization_codes", "refresh_families")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("auth_time", existing_type=sa.Integer(), type_=sa.BigInteger(),
                               existing_nullable=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("auth_time", existing_type=sa.BigInteger(), type_=sa.Integer(),
                               existing_nullable=False)
