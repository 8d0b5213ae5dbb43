"""Every IdP in force: those declared as files in ``idp_metadata/`` (read at start-up) and those
managed through the admin API (in the database). A change made through any node is seen by every
node within ``RECHECK_SECONDS``, without a restart: the registry compares a cheap fingerprint of the
``idps`` table and reloads what changed.

No two IdPs in force share an entity ID (``sub`` is derived from it): the ``idp_entity_ids`` table
holds every IdP's entity ID under a unique constraint. File IdPs are entered there at start-up
(``register_file_idps``); API-managed ones with the version in force (bridge.admin.idps)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bridge.clock import Clock
from bridge.errors import ConfigError
from bridge.saml.idp import IdentityProvider, parse_idp_settings
from bridge.saml.metadata import parse_idp_metadata
from bridge.store.db import Database
from bridge.store.models import IdpEntityId, IdpMetadataVersion, IdpRecord

log = logging.getLogger("bridge.idps")
RECHECK_SECONDS = 2.0


class IdpRegistry(Mapping[str, IdentityProvider]):
    def __init__(self, db: Database, clock: Clock, files: dict[str, IdentityProvider]) -> None:
        self.db = db
        self.clock = clock
        self.files = dict(files)
        self._lock = threading.Lock()
        self._checked_at = -1e18
        self._fingerprint: tuple[object, ...] | None = None
        self._managed: dict[str, IdentityProvider] = {}
        # Parsed IdPs by (slug, version, settings digest): a reload reparses only what changed.
        self._parsed: dict[tuple[str, int, str], IdentityProvider] = {}

    # --- Mapping ---------------------------------------------------------------------------------

    def _current(self) -> dict[str, IdentityProvider]:
        now = self.clock.now()
        with self._lock:
            if now - self._checked_at >= RECHECK_SECONDS or now < self._checked_at:
                self._checked_at = now
                self._reload_if_changed()
            return {**self._managed, **self.files}

    def __getitem__(self, slug: str) -> IdentityProvider:
        return self._current()[slug]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def source(self, slug: str) -> str | None:
        if slug in self.files:
            return "file"
        return "api" if slug in self._current() else None

    def invalidate(self) -> None:
        """This node changed an IdP: reload at the next access, whatever the fingerprint says
        (two changes within one tick of the clock leave it unchanged)."""
        with self._lock:
            self._checked_at = -1e18
            self._fingerprint = None

    # --- loading ---------------------------------------------------------------------------------

    def _reload_if_changed(self) -> None:
        with self.db.transaction() as session:
            fingerprint = tuple(session.execute(
                select(func.count(IdpRecord.slug), func.max(IdpRecord.updated_at))).one())
            if fingerprint == self._fingerprint:
                return
            rows = session.execute(
                select(IdpRecord, IdpMetadataVersion)
                .join(IdpMetadataVersion, IdpMetadataVersion.id == IdpRecord.version_id)).all()
        managed: dict[str, IdentityProvider] = {}
        parsed: dict[tuple[str, int, str], IdentityProvider] = {}
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        for record, version in rows:
            key = (record.slug, version.id, hashlib.sha256(record.settings_json.encode()).hexdigest())
            idp = self._parsed.get(key)
            if idp is None:
                try:
                    idp = load_managed_idp(record.slug, version.xml, record.settings_json,
                                           version_id=version.id, now=now)
                except ConfigError as error:  # validated when saved; report, keep serving others
                    log.error("IdP %s cannot be loaded: %s", record.slug, error)
                    continue
            managed[record.slug] = idp
            parsed[key] = idp
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
        self._managed, self._parsed, self._fingerprint = managed, parsed, fingerprint


def register_file_idps(db: Database, files: Mapping[str, IdentityProvider],
                       directory: str | Path) -> None:
    """Enter this node's file IdPs in ``idp_entity_ids``, in place of those the node that started
    before entered; refuse (naming the file) a file whose slug or entity ID an API-managed IdP
    holds. The files are the operator's: the last node to start speaks for them."""
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


def load_managed_idp(slug: str, xml: str, settings_json: str, *, version_id: int | None,
                     now: dt.datetime, check_expiry: bool = False) -> IdentityProvider:
    where = f"IdP {slug} (metadata version {version_id})"
    metadata = parse_idp_metadata(xml.encode("utf-8"), source=where, now=now,
                                  check_expiry=check_expiry)
    settings = parse_idp_settings(json.loads(settings_json), source=f"IdP {slug} settings")
    return IdentityProvider(slug=slug, metadata=metadata, settings=settings)
