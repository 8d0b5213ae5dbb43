"""Job health: when each background job last succeeded and failed, why, and how many times in a
row it has failed (shown by /readyz and `bridge jobs status`).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_leases") as batch:
        batch.add_column(sa.Column("last_success_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("last_failure_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("consecutive_failures", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("job_leases") as batch:
        batch.drop_column("consecutive_failures")
        batch.drop_column("last_error")
        batch.drop_column("last_failure_at")
        batch.drop_column("last_success_at")
