"""The stages of an API-managed IdP (docs/decisions/0025-draft-idps-and-staged-go-live.md).

* **draft**: a slug, a name and a vendor, no metadata yet. It exists so that our values (ACS URL,
  entity ID, SP metadata) can be entered at the IdP first, as Okta and Entra ID require before
  they hand out their metadata.
* **testing**: its first metadata is in force, but it is not offered to users (IdP chooser,
  ``/authorize``, admin sign-in); an admin runs test logins against it.
* **live**: offered to users. An IdP goes live when an admin asks for it and a test login with
  the metadata in force has passed, or when the admin explicitly goes live without one; both are
  audited with which.

A deleted IdP keeps its metadata versions, and the audit event of its deletion keeps its
settings: it can be restored, into testing, since its logins ended with it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bridge import audit
from bridge.errors import Conflict, InvalidInput, NotFound
from bridge.idps.history import changed_meanwhile, check_pin_in_force, new_version
from bridge.idps.metadata_diff import metadata_diff
from bridge.idps.overview import is_tested
from bridge.idps.settings import SLUG_RE, parse_idp_settings
from bridge.idps.uniqueness import (
    check_endpoints_free,
    check_entity_id_free,
    claim_entity_id,
    lost_race,
)
from bridge.idps.versions import MetadataVersions
from bridge.oauth.deprovisioned import forget_scim
from bridge.store.models import AuditEvent, IdpMetadataVersion, IdpRecord
from bridge.unicode_text import as_text

DRAFT, TESTING, LIVE = "draft", "testing", "live"


class IdpStages(MetadataVersions):
    """Drafts, their first metadata, going live, and restoring a deleted IdP."""

    def create_draft(self, slug: str, *, settings: dict[str, Any], actor: str) -> dict[str, Any]:
        self._check_new_slug(slug)
        settings_json = self._validated_settings(slug, settings)
        parse_idp_settings(json.loads(settings_json), source=f"IdP {slug} settings")
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                if session.get(IdpRecord, slug) is not None:
                    raise Conflict(f"slug: {slug!r} already exists")
                session.add(IdpRecord(slug=slug, version_id=None, settings_json=settings_json,
                                      created_at=now, updated_at=now, state=DRAFT))
                # What an earlier IdP of this slug left (a removed file's SCIM token and users).
                forgotten = forget_scim(session, idp_slug=slug, now=now)
                audit.record(session, at=now, event="idp_draft_created", outcome="success",
                             idp_slug=slug, detail={"actor": actor,
                                                    "settings": json.loads(settings_json),
                                                    "scim_users_forgotten": forgotten})
        except IntegrityError:
            raise Conflict(f"slug: {slug!r} already exists") from None
        self.registry.invalidate()
        return self.get_idp(slug)

    def propose_metadata(self, slug: str, *, xml: bytes | None = None, url: str | None = None,
                         actor: str) -> dict[str, Any]:
        record = self._managed(slug)
        if record.version_id is not None:
            return super().propose_metadata(slug, xml=xml, url=url, actor=actor)
        return self.first_metadata(slug, xml=xml, url=url, actor=actor)

    def first_metadata(self, slug: str, *, xml: bytes | None, url: str | None,
                       actor: str) -> dict[str, Any]:
        """A draft's metadata: in force at once (there is nothing to compare it with), and the
        IdP is then in testing, not offered to users."""
        record = self._managed(slug)
        fetched = None
        if xml is None:
            if not url:
                raise InvalidInput("metadata: upload the IdP's metadata or give its URL")
            fetched = self.fetch(slug, url, record.settings_json, actor)
            xml = fetched.body
        if not xml:
            raise InvalidInput("metadata: upload the IdP's metadata or give its URL")
        idp = self._validated(slug, xml, record.settings_json)
        entity_id = idp.metadata.entity_id
        check_entity_id_free(self.db, self.registry, slug, entity_id)
        check_endpoints_free(self.registry, slug, idp)
        diff = metadata_diff(None, idp.metadata)
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                row = session.get(IdpRecord, slug, with_for_update=True)
                if row is None:
                    raise NotFound("idp_unknown", f"No IdP {slug!r}.")
                if row.version_id is not None:
                    raise Conflict("metadata: this IdP got its metadata meanwhile; reload the page")
                if row.settings_json != record.settings_json:
                    raise changed_meanwhile("metadata: the IdP's settings")
                claim_entity_id(session, self.registry, slug, entity_id)
                version = new_version(slug, xml, "url" if fetched else "upload", actor, now, diff,
                                      status="applied")
                session.add(version)
                session.flush()
                row.version_id, row.state, row.updated_at = version.id, TESTING, now
                check_pin_in_force(session, row)
                if fetched is not None:
                    row.metadata_url, row.metadata_fetched_at = url, now
                    row.metadata_etag, row.metadata_last_modified = (fetched.etag,
                                                                     fetched.last_modified)
                audit.record(session, at=now, event="idp_metadata_applied", outcome="success",
                             idp_slug=slug, detail={"actor": actor, "before": None,
                                                    "after": version.id, "entity_id": entity_id,
                                                    "metadata_url": url if fetched else None})
                version_id = version.id
        except IntegrityError:
            raise lost_race(self.db, slug, entity_id) from None
        self.registry.invalidate()
        return {"status": "applied", "version": version_id, "diff": diff, "first": True}

    def go_live(self, slug: str, *, actor: str, without_test: bool = False) -> dict[str, Any]:
        """Offer the IdP to users: after a passing test login with the metadata in force, or,
        with ``without_test``, on the admin's word (recorded as such)."""
        self._managed(slug)
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(IdpRecord, slug, with_for_update=True)
            if row is None:
                raise NotFound("idp_unknown", f"No IdP {slug!r}.")
            if row.state == LIVE:
                raise Conflict(f"IdP {slug} is live already")
            if row.version_id is None:
                raise Conflict(f"IdP {slug} is a draft: give it the IdP's metadata and test a "
                               "login first", code="idp_untested")
            tested = is_tested(row)
            if not tested and not without_test:
                raise Conflict(f"IdP {slug}: no test login has passed with the metadata in force "
                               f"(version {row.version_id}) and the settings in force; test a "
                               "login first, or go live without one (recorded in the audit "
                               "trail)", code="idp_untested")
            row.state, row.updated_at = LIVE, now
            audit.record(session, at=now, event="idp_went_live", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "version": row.version_id,
                                                "tested": tested,
                                                "without_test": not tested})
        self.registry.invalidate()
        return self.get_idp(slug)

    def deleted_idps(self) -> list[dict[str, Any]]:
        """IdPs deleted through the admin API whose slug is free: the latest deletion of each."""
        with self.db.transaction() as session:
            present = set(session.scalars(select(IdpRecord.slug)))
            events = session.scalars(select(AuditEvent).where(AuditEvent.event == "idp_deleted")
                                     .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))
            latest: dict[str, AuditEvent] = {}
            for event in events:
                if event.idp_slug and event.idp_slug not in present:
                    latest.setdefault(event.idp_slug, event)
        deleted = []
        for slug, event in sorted(latest.items()):
            if slug in self.registry.files:
                continue
            detail = audit.detail_of(event.detail_json)
            settings = detail.get("settings")
            name = settings.get("display_name") if isinstance(settings, dict) else None
            deleted.append({"slug": slug, "deleted_at": event.at, "deleted_by": detail.get("actor"),
                            "display_name": as_text(name) or slug})
        return deleted

    def restore_deleted(self, slug: str, *, actor: str) -> dict[str, Any]:
        """Bring back a deleted IdP with the settings and metadata it had, in testing."""
        deleted = {d["slug"] for d in self.deleted_idps()}
        if not SLUG_RE.match(slug or "") or slug not in deleted:
            raise NotFound("idp_unknown", f"No deleted IdP {slug[:64]!r} to restore.")
        with self.db.transaction() as session:
            event = session.scalars(select(AuditEvent).where(
                AuditEvent.event == "idp_deleted", AuditEvent.idp_slug == slug)
                .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(1)).one()
            detail = audit.detail_of(event.detail_json)
        if detail.get("detail_unreadable"):
            # Its record was cut when it was written: what the IdP had cannot be known again.
            raise Conflict(f"slug: the deletion of {slug!r} was recorded incompletely; add the "
                           "IdP again instead", code="idp_not_restorable")
        settings_json = json.dumps(detail.get("settings") or {}, sort_keys=True)
        version_id = detail.get("version")
        entity_id = None
        if version_id is not None:
            idp = self._validated(slug, self.version_xml(slug, version_id).encode(), settings_json)
            entity_id = idp.metadata.entity_id
            check_entity_id_free(self.db, self.registry, slug, entity_id)
            check_endpoints_free(self.registry, slug, idp)
        else:  # a draft: its settings alone, as when it was made
            parse_idp_settings(json.loads(settings_json), source=f"IdP {slug} settings")
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                if session.get(IdpRecord, slug) is not None:
                    raise Conflict(f"slug: {slug!r} already exists")
                if entity_id is not None:
                    claim_entity_id(session, self.registry, slug, entity_id)
                    version = session.get(IdpMetadataVersion, version_id)
                    assert version is not None
                    version.status = "applied"
                session.add(IdpRecord(slug=slug, version_id=version_id,
                                      settings_json=settings_json,
                                      metadata_url=detail.get("metadata_url"), created_at=now,
                                      updated_at=now,
                                      state=TESTING if version_id is not None else DRAFT))
                audit.record(session, at=now, event="idp_restored", outcome="success",
                             idp_slug=slug, detail={"actor": actor, "version": version_id,
                                                    "deleted_at": event.at})
        except IntegrityError:
            raise lost_race(self.db, slug, entity_id or "") from None
        self.registry.invalidate()
        return self.get_idp(slug)

    def _check_new_slug(self, slug: str) -> None:
        if not SLUG_RE.match(slug or ""):
            raise InvalidInput("slug: must match [a-z0-9][a-z0-9-]{0,62}")
        if slug in self.registry.files:
            raise Conflict(f"slug: {slug!r} is declared as a file in idp_metadata/; change the file")
