"""An outstanding login request keeps what the client asked of the login itself (acr_values,
max_age, prompt), so that the IdP's answer is held to it (docs/step-up.md).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authn_requests") as batch:
        batch.add_column(sa.Column("acr_values", sa.Text(), nullable=True))
        batch.add_column(sa.Column("max_age", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prompt", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authn_requests") as batch:
        batch.drop_column("prompt")
        batch.drop_column("max_age")
        batch.drop_column("acr_values")
