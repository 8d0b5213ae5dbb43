"""Every IdP in force: those declared as files in ``idp_metadata/`` (read at start-up) and those
managed through the admin API (in the database). A change made through any node is seen by every
node within the registry's recheck interval (``recheck_seconds``, 2 s), without a restart: the
registry compares a cheap fingerprint of the ``idps`` table and reloads what changed.

No two IdPs in force share an entity ID (``sub`` is derived from it): the ``idp_entity_ids`` table
holds every IdP's entity ID under a unique constraint. File IdPs are entered there at start-up
(``register_file_idps``); API-managed ones with the version in force (bridge.idps.lifecycle)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from pathlib import Path

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.clock import Clock
from bridge.errors import ConfigError
from bridge.idps.endpoints import clashes
from bridge.idps.metadata_signature import verify_metadata_signature
from bridge.idps.settings import (
    IdentityProvider,
    parse_idp_settings,
    settings_fingerprint,
    stored_value,
)
from bridge.saml.metadata import parse_idp_metadata
from bridge.store import direct
from bridge.store.db import Database
from bridge.store.models import IdpEntityId, IdpMetadataVersion, IdpRecord

log = logging.getLogger("bridge.idps")

# The statuses of a version that was put in force: "superseded" too, for a record set back by
# hand (or restored from a backup of the idps table alone) to a version it had.
PUT_IN_FORCE = ("applied", "superseded")
# The version an API-managed IdP's record has in force: one of its own that was put in force (an
# id reused for another IdP's version, or for a version proposed since, is not).
_VERSION_IN_FORCE = ((IdpMetadataVersion.id == IdpRecord.version_id)
                     & (IdpMetadataVersion.slug == IdpRecord.slug)
                     & IdpMetadataVersion.status.in_(PUT_IN_FORCE))

# The record an API-managed IdP was loaded from, read in the request that issues through it.
_RECORD_IN_FORCE = select(IdpRecord.created_at, IdpRecord.state).where(
    IdpRecord.slug == bindparam("slug"))


# Why an IdP that loads is not served, by code: what its admins are told (the log has the detail).
NOT_SERVED_REASONS = {
    "metadata_pin_mismatch": "its pinned metadata signing certificate does not sign the metadata "
                             "in force",
    "entity_id_clash": "its entity ID is also another IdP's",
    "endpoint_clash": "one of its endpoints shares an origin with another IdP's, and one of the "
                      "two is a Single Logout service",
    # Stored, but its metadata in force or its settings no longer load (valid when saved, refused
    # by a stricter check of a later version, say): the problems are shown with it.
    "not_loadable": "its metadata in force or its settings no longer load",
}


class IdpRegistry(Mapping[str, IdentityProvider]):
    def __init__(self, db: Database, clock: Clock, files: dict[str, IdentityProvider], *,
                 shared_origins: frozenset[str] = frozenset(), recheck_seconds: float = 2.0) -> None:
        self.db = db
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self.files = dict(files)
        self.shared_origins = shared_origins
        # Every API-managed IdP that loads, also one not served for a clash (see the reload).
        self._loaded: dict[str, IdentityProvider] = {}
        # Why each of those is not served, as a stable code (NOT_SERVED_REASONS).
        self._not_served: dict[str, str] = {}
        # Every API-managed IdP whose version in force or settings do not load, with why not.
        self._unloadable: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._checked_at = -1e18
        self._fingerprint: tuple[object, ...] | None = None
        self._managed: dict[str, IdentityProvider] = {}
        # Parsed IdPs by (slug, version, settings digest), each with why its pinned certificate
        # does not sign its metadata (None when it does, or none is pinned): a reload reparses
        # and checks only what changed.
        self._parsed: dict[tuple[str, int, str, str, float],
                           tuple[IdentityProvider, str | None]] = {}

    # --- Mapping ---------------------------------------------------------------------------------

    def _current(self) -> dict[str, IdentityProvider]:
        now = self.clock.now()
        with self._lock:
            if now - self._checked_at >= self.recheck_seconds or now < self._checked_at:
                self._checked_at = now
                self._reload_if_changed()
            return {**self._managed, **self.files}

    def __getitem__(self, slug: str) -> IdentityProvider:
        return self._current()[slug]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    # Mapping's own items() and values() look each IdP up again: a reload between two looks
    # (another node's deletion, due mid-iteration) would lose one and raise KeyError. One reading.
    def items(self) -> ItemsView[str, IdentityProvider]:
        return self._current().items()

    def values(self) -> ValuesView[IdentityProvider]:
        return self._current().values()

    def in_force(self) -> dict[str, IdentityProvider]:
        """Every IdP in force, for the checks of a change: this node's files and every
        API-managed IdP that loads, also those no node should serve because they clash."""
        self._current()
        with self._lock:
            return {**self._loaded, **self.files}

    def source(self, slug: str) -> str | None:
        if slug in self.files:
            return "file"
        return "api" if slug in self.in_force() else None

    def not_served_reason(self, slug: str) -> str | None:
        """Why an API-managed IdP that loads is not served (a key of ``NOT_SERVED_REASONS``),
        or None (served, or not loaded at all). Its admins are told; the other IdP of a clash
        is not named, since it may be another admin's."""
        self._current()
        with self._lock:
            return self._not_served.get(slug)

    def load_problems(self, slug: str) -> list[str] | None:
        """Why the stored metadata in force or settings of API-managed IdP ``slug`` no longer
        load, or None when they load (or no such IdP is stored). Its admins see the problems
        and mend them: apply another version, or save settings that load."""
        self._current()
        with self._lock:
            return self._unloadable.get(slug)

    def stands_since(self, session: Session, slug: str, since: float) -> bool:
        """Whether IdP ``slug`` is still the one that stood at ``since`` (read in ``session``):
        declared in a file on this node, or made through the admin API no later than then, not
        deleted, and offered to users. What a person's sign-in through it gave them (an admin
        session, an admin token) stands no longer than that."""
        if slug in self.files:
            return True
        record = session.get(IdpRecord, slug)
        return record is not None and record.created_at <= since and record.state == "live"

    def still_in_force(self, connection: direct.Runner, idp: IdentityProvider) -> bool:
        """Whether ``idp``, as this node has it, is still the IdP in force under its slug: a file,
        or the record it was loaded from, still there and live. This node rereads the records
        every few seconds; what it issues through an IdP (a token from a bearer assertion) is
        checked against the database, which another node may have changed meanwhile (deleted
        the IdP, or made another under the slug)."""
        if idp.slug in self.files:
            return True
        row = direct.first(connection, _RECORD_IN_FORCE, {"slug": idp.slug})
        return row is not None and row.state == "live" and row.created_at == idp.created_at

    def invalidate(self) -> None:
        """This node changed an IdP: reload at the next access, whatever the fingerprint says
        (two changes within one tick of the clock leave it unchanged)."""
        with self._lock:
            self._checked_at = -1e18
            self._fingerprint = None

    # --- loading ---------------------------------------------------------------------------------

    def _reload_if_changed(self) -> None:
        with self.db.transaction() as session:
            # The sum as well as the latest: a node whose clock ran ahead leaves a time in the
            # future as the latest, and every write after it (at the right time) would leave
            # count and latest as they were, unseen by the other nodes. Any write changes the
            # sum (decision 24 found the same for clients).
            fingerprint = tuple(session.execute(
                select(func.count(IdpRecord.slug), func.max(IdpRecord.updated_at),
                       func.sum(IdpRecord.updated_at))).one())
            if fingerprint == self._fingerprint:
                return
            # Drafts (no version yet) aside; a record whose version is missing (removed by hand,
            # a partial restore) is reported as one that does not load, rather than ignored. Only
            # a version of its own that was put in force is: an id reused for another IdP's
            # version, or for a version proposed since (SQLite reuses the largest id deleted),
            # is not, nor one discarded.
            rows = session.execute(
                select(IdpRecord, IdpMetadataVersion)
                .outerjoin(IdpMetadataVersion, _VERSION_IN_FORCE)
                .where(IdpRecord.version_id.is_not(None))).all()
        managed: dict[str, IdentityProvider] = {}
        parsed: dict[tuple[str, int, str, str, float], tuple[IdentityProvider, str | None]] = {}
        unpinned: dict[str, str] = {}
        unloadable: dict[str, list[str]] = {}
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        for record, version in rows:
            if version is None:
                log.error("IdP %s cannot be loaded: its metadata version %s is missing",
                          record.slug, record.version_id)
                unloadable[record.slug] = [
                    f"its metadata version in force ({record.version_id}) is missing, or is not "
                    "one of its versions that was put in force; apply or restore another version"]
                continue
            key = (record.slug, version.id, settings_fingerprint(record.settings_json),
                   record.state, record.created_at)
            cached = self._parsed.get(key)
            if cached is None:
                try:
                    idp = load_managed_idp(record.slug, version.xml, record.settings_json,
                                           version_id=version.id, now=now)
                    idp.live = record.state == "live"
                    idp.created_at = record.created_at
                    cached = (idp, _pin_problem(idp, version.xml))
                except ConfigError as error:  # validated when saved; report, keep serving others
                    log.error("IdP %s cannot be loaded: %s", record.slug, error)
                    unloadable[record.slug] = list(error.problems)
                    continue
                except Exception as error:  # noqa: BLE001 - one IdP's bug must not stop the others
                    log.exception("IdP %s cannot be loaded", record.slug)
                    unloadable[record.slug] = [
                        f"its stored metadata or settings could not be read "
                        f"({type(error).__name__}; the log has the detail)"]
                    continue
            idp, problem = cached
            if problem is not None:
                unpinned[record.slug] = problem
            managed[record.slug] = idp
            parsed[key] = cached
        # Loaded (its admins can see and mend it) but not served: a pin that does not sign the
        # document in force.
        loaded = dict(managed)
        not_served: dict[str, str] = {}
        for slug, problem in unpinned.items():
            log.error("IdP %s is not served: %s", slug, problem)
            del managed[slug]
            not_served[slug] = "metadata_pin_mismatch"
        # The database's unique constraint keeps entity IDs apart; a node whose files differ from
        # the node that last started could still see a clash: its own file IdP wins, and the
        # clashing API-managed IdP is not served here (docs/decisions/0011-one-idp-per-entity-id.md).
        files = {idp.metadata.entity_id: slug for slug, idp in self.files.items()}
        counts = Counter(idp.metadata.entity_id for idp in managed.values())
        for slug, idp in list(managed.items()):
            entity_id = idp.metadata.entity_id
            if entity_id in files or counts[entity_id] > 1:
                log.error("IdP %s is not served: its entity ID %r is also used by IdP %s", slug,
                          entity_id, files.get(entity_id) or "another API-managed IdP")
                del managed[slug]
                not_served[slug] = "entity_id_clash"
        # Nor is one whose Single Logout service shares an origin with another IdP's endpoints
        # (a clash the checks of each change did not see: two admins at once, files that differ
        # between nodes, or a state from before the rule), nor the other if it is API-managed:
        # our signed logout messages for one would reach the other
        # (docs/decisions/0021-one-idp-per-endpoint.md).
        for slug, idp in list(managed.items()):
            others = {s: i.metadata for s, i in {**loaded, **self.files}.items() if s != slug}
            found = clashes(idp.metadata, others, self.shared_origins)
            if found:
                log.error("IdP %s is not served: %s", slug, found[0].describe(
                    "a file" if found[0].other_slug in self.files else "API-managed"))
                del managed[slug]
                not_served[slug] = "endpoint_clash"
        self._managed, self._parsed, self._fingerprint = managed, parsed, fingerprint
        self._loaded, self._not_served, self._unloadable = loaded, not_served, unloadable


def register_file_idps(db: Database, files: Mapping[str, IdentityProvider],
                       directory: str | Path, *,
                       shared_origins: frozenset[str] = frozenset()) -> None:
    """Enter this node's file IdPs in ``idp_entity_ids``, in place of those the node that started
    before entered; refuse (naming the file) a file whose slug or entity ID an API-managed IdP
    holds, or whose endpoints clash with another IdP's (a file's or an API-managed one's,
    docs/decisions/0021-one-idp-per-endpoint.md). The files are the operator's: the last node
    to start speaks for them."""
    endpoint_problems = _file_endpoint_clashes(db, files, Path(directory), shared_origins)
    for attempt in range(3):
        try:
            with db.transaction() as session:
                # Nodes starting together: one at a time, also when the table is still empty.
                db.serialize(session, "idp_entity_ids")
                rows = list(session.scalars(select(IdpEntityId).with_for_update()))
                managed = set(session.scalars(select(IdpRecord.slug)))
                api = {row.entity_id: row.slug for row in rows if row.source == "api"}
                problems = []
                for slug, idp in sorted(files.items()):
                    where = Path(directory) / f"{slug}.xml"
                    if slug in managed:
                        problems.append(f"{where}: the slug {slug} is also an IdP managed through "
                                        "the admin API; delete that IdP or rename the file")
                    holder = api.get(idp.metadata.entity_id)
                    if holder is not None and holder != slug:
                        problems.append(f"{where}: entity ID {idp.metadata.entity_id!r} is already "
                                        f"used by IdP {holder} (managed through the admin API); "
                                        "one IdP per entity ID, since sub is derived from it")
                if problems:
                    raise ConfigError(problems, code="idp_entity_id_in_use")
                if endpoint_problems:
                    raise ConfigError(endpoint_problems, code="idp_endpoint_in_use")
                for row in rows:
                    if row.source == "file":
                        session.delete(row)
                session.flush()
                session.add_all(IdpEntityId(slug=slug, entity_id=idp.metadata.entity_id,
                                            source="file") for slug, idp in files.items())
            return
        except IntegrityError:
            # Another node entered its files at the same moment: read again and redo.
            if attempt == 2:
                raise


def _file_endpoint_clashes(db: Database, files: Mapping[str, IdentityProvider], directory: Path,
                           shared_origins: frozenset[str]) -> list[str]:
    """What the files' endpoints clash with: each other, and the API-managed IdPs in force."""
    with db.transaction() as session:
        rows = session.execute(
            select(IdpRecord.slug, IdpMetadataVersion.xml)
            .join(IdpMetadataVersion, _VERSION_IN_FORCE)).all()
    now = dt.datetime.fromtimestamp(0, dt.UTC)  # no expiry check: only the endpoints are read
    managed = {}
    for slug, xml in rows:
        try:
            managed[slug] = parse_idp_metadata(xml.encode("utf-8"), source=slug, now=now,
                                               check_expiry=False)
        except Exception:  # noqa: BLE001, S112 - not loadable: the registry reports it, serves it nowhere
            continue
    problems = []
    for slug, idp in sorted(files.items()):
        others = {**{s: i.metadata for s, i in files.items() if s != slug},
                  **{s: m for s, m in managed.items() if s not in files}}
        for clash in clashes(idp.metadata, others, shared_origins):
            holder = (f"the file {clash.other_slug}.xml" if clash.other_slug in files
                      else "managed through the admin API")
            problems.append(f"{directory / f'{slug}.xml'}: {clash.describe(holder)}")
    return problems


def _pin_problem(idp: IdentityProvider, xml: str) -> str | None:
    """With a pinned ``metadata_signing_certificate``, the document in force must be signed by
    it, as every write that sets either checks under the IdP's lock. Checked again as the
    registry loads the pair: a row written before those checks existed (a pin set while another
    admin applied an unsigned version, say) is not served, rather than served under a pin that
    never signed it. Why not, or None."""
    pinned = idp.settings.metadata_signing_certificate
    if pinned:
        try:
            verify_metadata_signature(xml.encode("utf-8"), pinned)
        except ConfigError as error:
            return (f"the pinned metadata_signing_certificate does not sign the metadata in "
                    f"force (version {idp.version_id}): " + "; ".join(error.problems))
    return None


def load_managed_idp(slug: str, xml: str, settings_json: str, *, version_id: int | None,
                     now: dt.datetime, check_expiry: bool = False) -> IdentityProvider:
    # A document being checked has no version yet: its problems are the metadata's, on the page
    # of that IdP; a stored one that no longer loads is named for the log.
    where = f"IdP {slug} (metadata version {version_id})" if version_id else "metadata"
    metadata = parse_idp_metadata(xml.encode("utf-8"), source=where, now=now,
                                  check_expiry=check_expiry)
    settings = parse_idp_settings(stored_value(settings_json), source=f"IdP {slug} settings")
    return IdentityProvider(slug=slug, metadata=metadata, settings=settings, version_id=version_id,
                            settings_fingerprint=settings_fingerprint(settings_json))
