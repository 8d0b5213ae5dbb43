"""One IdP per entity ID: the entity ID in force of every IdP, under a unique constraint.

API-managed IdPs are filled in from the metadata version in force; file IdPs are written by each
node at start-up. If two API-managed IdPs are already in force with one entity ID, the upgrade
stops and names them: one of them may be minting the other's users' ``sub`` values, and only a
person can tell which (docs/decisions/0011-one-idp-per-entity-id.md).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from lxml import etree

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
# The stored documents were validated when stored; parse them as untrusted all the same.
_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True,
                          huge_tree=False, remove_comments=True)


def _entity_id(xml: str) -> str:
    root = etree.fromstring(xml.encode("utf-8"), _PARSER)
    if root.tag == f"{{{_MD}}}EntitiesDescriptor":
        root = next(e for e in root.iter(f"{{{_MD}}}EntityDescriptor")
                    if e.find(f"{{{_MD}}}IDPSSODescriptor") is not None)
    return (root.get("entityID") or "").strip()


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT idps.slug, idp_metadata_versions.xml FROM idps JOIN idp_metadata_versions "
        "ON idp_metadata_versions.id = idps.version_id ORDER BY idps.slug")).all()
    holders: dict[str, list[str]] = {}
    for slug, xml in rows:
        entity_id = _entity_id(xml)
        if len(entity_id) > 1024:  # SAML Metadata §2.3.2; the column holds no more
            raise RuntimeError(f"cannot upgrade: IdP {slug} has an entity ID over 1024 characters;"
                               " give it metadata with a valid entityID first")
        holders.setdefault(entity_id, []).append(slug)
    shared = {entity_id: slugs for entity_id, slugs in holders.items() if len(slugs) > 1}
    if shared:
        listing = "; ".join(f"{entity_id!r} is in force for IdPs {', '.join(slugs)}"
                            for entity_id, slugs in sorted(shared.items()))
        raise RuntimeError(
            f"cannot upgrade: two IdPs share an entity ID ({listing}). Their users' sub values "
            "collide. Remove the IdP that should not have it (with the previous release: "
            "`DELETE /admin/api/idps/<slug>`, or its row in the idps table), then run `bridge db "
            "upgrade` again.")
    table = op.create_table(
        "idp_entity_ids",
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("entity_id", sa.String(1024), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_idp_entity_ids"),
        sa.UniqueConstraint("entity_id", name="uq_idp_entity_ids_entity_id"),
    )
    op.bulk_insert(table, [{"slug": slugs[0], "entity_id": entity_id, "source": "api"}
                           for entity_id, slugs in holders.items()])


def downgrade() -> None:
    op.drop_table("idp_entity_ids")
