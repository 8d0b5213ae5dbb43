"""Whose SCIM token it is: the IdP and subject of the admin session (or owned admin API token)
that issued it, so that deprovisioning that person revokes it too; and the owners of admin API
tokens made before revision 0021 recorded them, where they can be told
(docs/decisions/0023-deprovisioning-by-the-idp.md).

A SCIM token issued by the command line, by an admin API token without an owner, or before this
revision has no owner: nothing recorded whose it was. An admin API token made from the admin
pages before 0021 names its maker in ``created_by`` ("user:<subject> (<name>)") but not the
maker's IdP: it gets an owner when exactly one IdP knows that subject (an admin session, a
refresh family, a SCIM user or a refusal of that subject); otherwise, and for a token made by
another token, it stays without one.

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
    _backfill_admin_token_owners()


_IDPS_OF_SUBJECT = sa.text(
    "SELECT idp_slug FROM admin_sessions WHERE subject = :subject "
    "UNION SELECT idp_slug FROM refresh_families WHERE subject = :subject "
    "UNION SELECT idp_slug FROM scim_users WHERE subject = :subject "
    "UNION SELECT idp_slug FROM deprovisioned_subjects WHERE subject = :subject")


def _backfill_admin_token_owners() -> None:
    connection = op.get_bind()
    ownerless = connection.execute(sa.text(
        "SELECT id, created_by FROM admin_tokens WHERE owner_subject IS NULL "
        "AND created_by LIKE 'user:%'")).all()
    for token_id, created_by in ownerless:
        subject = created_by[len("user:"):].partition(" (")[0]
        if not subject or len(subject) > 128:
            continue
        idps = {row[0] for row in connection.execute(_IDPS_OF_SUBJECT, {"subject": subject})}
        if len(idps) == 1:
            connection.execute(sa.text(
                "UPDATE admin_tokens SET owner_idp_slug = :idp, owner_subject = :subject "
                "WHERE id = :id"), {"idp": idps.pop(), "subject": subject, "id": token_id})


def downgrade() -> None:
    op.drop_index("ix_provisioning_tokens_owner", table_name="provisioning_tokens")
    with op.batch_alter_table("provisioning_tokens") as batch:
        batch.drop_column("owner_subject")
        batch.drop_column("owner_idp_slug")
