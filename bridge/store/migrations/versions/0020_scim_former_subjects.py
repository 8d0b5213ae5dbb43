"""The subjects a SCIM user stood for before a rename, so that its deactivation or deletion
still ends the logins made under them (docs/decisions/0023-deprovisioning-by-the-idp.md).

A user renamed before this revision has no former subject recorded: nothing said which it was.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scim_former_subjects",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("idp_slug", sa.String(63), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "subject", name="pk_scim_former_subjects"),
    )
    op.create_index("ix_scim_former_subjects_idp_slug_subject", "scim_former_subjects",
                    ["idp_slug", "subject"])


def downgrade() -> None:
    op.drop_table("scim_former_subjects")
