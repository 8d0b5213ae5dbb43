"""Whose SCIM token it is: the IdP and subject of the admin session (or owned admin API token)
that issued it, so that deprovisioning that person revokes it too
(docs/decisions/0023-deprovisioning-by-the-idp.md).

A token issued by the command line, by an admin API token without an owner, or before this
revision has no owner: nothing recorded whose it was.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provisioning_tokens") as batch:
        batch.add_column(sa.Column("owner_idp_slug", sa.String(63), nullable=True))
        batch.add_column(sa.Column("owner_subject", sa.String(128), nullable=True))
    op.create_index("ix_provisioning_tokens_owner", "provisioning_tokens",
                    ["owner_idp_slug", "owner_subject"])


def downgrade() -> None:
    op.drop_index("ix_provisioning_tokens_owner", table_name="provisioning_tokens")
    with op.batch_alter_table("provisioning_tokens") as batch:
        batch.drop_column("owner_subject")
        batch.drop_column("owner_idp_slug")
