"""SCIM user names compared in one Unicode form (NFKC_Casefold, docs/decisions/0023): the
stored comparison key of every SCIM user computed again from its ``userName``.

Rows written before this revision hold ``str.lower()`` of the name. A name whose new key another
user of the same IdP already holds, or whose key would not fit the column, keeps its old key
(and is reported here): two provisioned users are never merged by an upgrade. Such a pair stays
two users until the IdP renames or deletes one: the lookups find each by its own name (they
look for every key form ever stored), and a write that keeps a user's name keeps the key it
holds (bridge.provisioning.scim_users._user_name_key), so a deactivation by id succeeds.

The key computed here keeps default-ignorable characters, which today's ``name_key`` removes;
a row so keyed is found by the lookups as well and takes today's key at its next write.

Revision ID: 0019
Revises: 0018
"""

import json
import logging
from unicodedata import normalize

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
_KEY_LENGTH = 256


def _name_key(value: str) -> str:
    # As bridge.provisioning.scim_model.name_key computes it when this revision was written.
    return normalize("NFKC", normalize("NFKC", value).casefold())


def upgrade() -> None:
    _rekey(_name_key)


def downgrade() -> None:
    _rekey(str.lower)  # the form the code before this revision computes


def _rekey(key_of) -> None:  # noqa: ANN001 - a str -> str function
    connection = op.get_bind()
    users = sa.table("scim_users", sa.column("id", sa.String), sa.column("idp_slug", sa.String),
                     sa.column("user_name_key", sa.String),
                     sa.column("resource_json", sa.Text))
    rows = connection.execute(sa.select(users.c.id, users.c.idp_slug, users.c.user_name_key,
                                        users.c.resource_json).order_by(users.c.id)).all()
    taken = {(row.idp_slug, row.user_name_key) for row in rows}
    for row in rows:
        try:
            name = json.loads(row.resource_json).get("userName")
        except (ValueError, AttributeError):
            name = None
        if not isinstance(name, str):
            continue
        key = key_of(name)
        if key == row.user_name_key:
            continue
        if (row.idp_slug, key) in taken or len(key) > _KEY_LENGTH:
            log.warning("SCIM user %s of IdP %s keeps its old userName key: the new one is "
                        "taken or too long", row.id, row.idp_slug)
            continue
        connection.execute(users.update().where(users.c.id == row.id)
                           .values(user_name_key=key))
        taken.discard((row.idp_slug, row.user_name_key))
        taken.add((row.idp_slug, key))

