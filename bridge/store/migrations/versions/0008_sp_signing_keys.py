"""The SP's SAML signing keys roll over: a key is published (in our SP metadata) before it signs,
and stays published for a while after it stops (docs/decisions/0020-sp-signing-key.md).

``saml_keys`` gains the two moments the encryption keys did not need: ``active_at`` (signs from
then on) and ``unpublish_at`` (leaves the metadata then). Encryption keys leave both empty.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("saml_keys") as batch:
        batch.add_column(sa.Column("active_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("unpublish_at", sa.Double(), nullable=True))


def downgrade() -> None:
    # Signing keys mean nothing to the previous schema: drop them with their columns.
    op.execute("DELETE FROM saml_keys WHERE use = 'signing'")
    with op.batch_alter_table("saml_keys") as batch:
        batch.drop_column("unpublish_at")
        batch.drop_column("active_at")
