"""Go-live needs a passing test login with the settings in force, not only the metadata version
(docs/decisions/0025-draft-idps-and-staged-go-live.md).

``idps.tested_settings``: the fingerprint (SHA-256 of the stored settings) of the settings a
passing test login was made with; ``test_logins.settings_fingerprint``: those in force when the
test started. An IdP tested before this revision has none, so it needs a new test before going
live: nothing says which settings its test was made with. Live IdPs stay live.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idps") as batch:
        batch.add_column(sa.Column("tested_settings", sa.String(64), nullable=True))
    with op.batch_alter_table("test_logins") as batch:
        batch.add_column(sa.Column("settings_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("test_logins") as batch:
        batch.drop_column("settings_fingerprint")
    with op.batch_alter_table("idps") as batch:
        batch.drop_column("tested_settings")
