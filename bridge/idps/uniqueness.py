"""One IdP per entity ID (``sub`` is derived from it, docs/decisions/0011-one-idp-per-entity-id.md)
and per Single Logout origin (docs/decisions/0021-one-idp-per-endpoint.md), as checked for a change
made through the admin API: early, naming the IdP that holds what the change wants, and bindingly
in the transaction that puts a version in force."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.errors import ConfigError, Conflict
from bridge.idps.endpoints import clashes
from bridge.idps.registry import IdpRegistry
from bridge.idps.settings import IdentityProvider
from bridge.store.db import Database
from bridge.store.models import IdpEntityId


def check_entity_id_free(db: Database, registry: IdpRegistry, slug: str, entity_id: str) -> None:
    """Early refusal of a proposal whose entity ID another IdP holds; the binding check is
    ``claim_entity_id``, in the transaction that puts a version in force."""
    with db.transaction() as session:
        holder = session.scalars(select(IdpEntityId).where(
            IdpEntityId.entity_id == entity_id, IdpEntityId.slug != slug)).first()
        if holder is not None:
            raise entity_id_in_use(entity_id, holder.slug, holder.source)
    _check_files(registry, slug, entity_id)


def check_endpoints_free(registry: IdpRegistry, slug: str, idp: IdentityProvider) -> None:
    """Refuse metadata whose Single Logout service would share an origin with another IdP's
    endpoints, or whose endpoints share one with another IdP's Single Logout service, naming
    that IdP. Two changes at once that clash are both stored, and the registry then serves
    neither."""
    registry.invalidate()  # every change made so far, on any node
    others = {s: i.metadata for s, i in registry.in_force().items() if s != slug}
    found = clashes(idp.metadata, others, registry.shared_origins)
    if found:
        files = registry.files
        raise Conflict(["metadata: " + clash.describe(
            "a file in idp_metadata/" if clash.other_slug in files
            else "managed through the admin API") for clash in found],
            code="idp_endpoint_in_use")


def claim_entity_id(session: Session, registry: IdpRegistry, slug: str, entity_id: str) -> None:
    """Record ``entity_id`` as the one ``slug`` answers to, in the caller's transaction.
    The row is read first for a precise refusal; the unique constraint on
    ``idp_entity_ids.entity_id`` decides between two transactions that both read it free
    (the loser's flush raises IntegrityError, see ``lost_race``)."""
    _check_files(registry, slug, entity_id)
    holder = session.scalars(select(IdpEntityId).where(
        IdpEntityId.entity_id == entity_id)).first()
    if holder is not None and holder.slug != slug:
        raise entity_id_in_use(entity_id, holder.slug, holder.source)
    row = session.get(IdpEntityId, slug)
    if row is None:
        session.add(IdpEntityId(slug=slug, entity_id=entity_id, source="api"))
    elif row.source != "api":
        raise Conflict(f"slug: {slug!r} is declared as a file in idp_metadata/")
    else:
        row.entity_id = entity_id
    session.flush()


def _check_files(registry: IdpRegistry, slug: str, entity_id: str) -> None:
    # This node's own files, whatever another node entered in idp_entity_ids.
    for other, idp in registry.files.items():
        if other != slug and idp.metadata.entity_id == entity_id:
            raise entity_id_in_use(entity_id, other, "file")


def lost_race(db: Database, slug: str, entity_id: str) -> ConfigError:
    """What to say after a unique constraint refused a write: read who won."""
    with db.transaction() as session:
        holder = session.scalars(select(IdpEntityId).where(
            IdpEntityId.entity_id == entity_id)).first()
        if holder is not None and holder.slug != slug:
            return entity_id_in_use(entity_id, holder.slug, holder.source)
    return Conflict(f"IdP {slug!r} was changed at the same time by another request; "
                    "reload and try again")


def entity_id_in_use(entity_id: str, holder: str, source: str) -> Conflict:
    where = "a file in idp_metadata/" if source == "file" else "managed through the admin API"
    return Conflict(f"metadata: entity ID {entity_id!r} is already used by IdP {holder} "
                    f"({where}); an entity ID belongs to one IdP, since sub is derived from "
                    "it", code="idp_entity_id_in_use")
