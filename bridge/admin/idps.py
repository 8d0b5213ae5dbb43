"""IdP onboarding and metadata lifecycle, behind the admin API, the admin pages and the CLI.

Every change is validated completely before anything is written, so what was in force stays in
force when a proposal is refused; every change is an audit event with who, what, before and after.
Metadata arrives as a document or from a URL, first as a *proposed* version with its diff against
what is in force; it applies at once when the IdP's policy allows (by default: only added
certificates), otherwise when an admin applies it. Every applied version stays in the history and
any earlier one can be restored.

Two rules guard identity and trust (docs/decisions/0011 and 0012):
- one IdP per entity ID, since ``sub`` is derived from it: checked in the same transaction that
  puts a version in force, and enforced by the unique constraint on ``idp_entity_ids``;
- a document past its ``validUntil`` is refused, and no document that is not shown to be newer
  than the one in force, or that brings back a certificate this IdP once dropped, applies
  without a person.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge import audit
from bridge.admin.fetch import FetchPolicy, fetch_metadata
from bridge.admin.metadata_diff import document_order, metadata_diff
from bridge.admin.metadata_signature import verify_metadata_signature
from bridge.errors import ConfigError, Conflict, InvalidInput, NotFound
from bridge.federation import Bridge, check_idp_initiated_targets, spend_codes
from bridge.idp_endpoints import clashes
from bridge.idp_registry import IdpRegistry, load_managed_idp
from bridge.saml.idp import SLUG_RE, IdentityProvider
from bridge.saml.metadata import IdpMetadata
from bridge.saml.sp import sp_metadata
from bridge.store.models import (
    AuditEvent,
    AuthorizationCode,
    IdpEntityId,
    IdpMetadataVersion,
    IdpRecord,
    RefreshFamily,
)
from bridge.tokens import refresh as refresh_tokens

WARN_DAYS = (30, 7)
# A metadata URL is never fetched more often than this, whatever cacheDuration says.
MIN_REFRESH_SECONDS = 300
log = logging.getLogger("bridge.admin.idps")


class RefreshFailed(RuntimeError):
    """A scheduled refresh hit an unexpected error for some IdPs; the others were refreshed."""

    def __init__(self, outcomes: dict[str, str]) -> None:
        self.outcomes = outcomes
        failed = {slug: o for slug, o in outcomes.items() if o.startswith("failed: internal")}
        super().__init__(f"metadata refresh failed unexpectedly for {', '.join(failed)} "
                         f"(the log has the traceback); outcomes: {outcomes}")


def _stale_since(metadata: IdpMetadata, now: float) -> dt.datetime | None:
    """When a document that gives both its publication time and a cacheDuration stopped being
    current, if it has; None otherwise."""
    if metadata.published_at is None or metadata.cache_duration_seconds is None:
        return None
    until = metadata.published_at + dt.timedelta(seconds=metadata.cache_duration_seconds)
    return until if until.timestamp() < now else None


def certificate_report(metadata: IdpMetadata, now: dt.datetime) -> list[dict[str, Any]]:
    report = []
    for cert in metadata.signing_certificates:
        days = (cert.not_after - now).total_seconds() / 86400
        warning = ("expired" if days < 0 else "expires_within_7_days" if days < WARN_DAYS[1]
                   else "expires_within_30_days" if days < WARN_DAYS[0] else None)
        report.append({"sha256": cert.sha256_fingerprint, "not_after": cert.not_after.isoformat(),
                       "days_left": int(days), "warning": warning})
    return report


class IdpAdmin:
    def __init__(self, bridge: Bridge, fetch_policy: FetchPolicy | None = None) -> None:
        self.bridge = bridge
        self.db = bridge.db
        self.clock = bridge.clock
        self.fetch_policy = fetch_policy or FetchPolicy()

    @property
    def registry(self) -> IdpRegistry:
        assert isinstance(self.bridge.idps, IdpRegistry)
        return self.bridge.idps

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)

    # --- reading ---------------------------------------------------------------------------------

    def list_idps(self) -> list[dict[str, Any]]:
        health = self._health()
        return [self._summary(slug, idp, health.get(slug, {}))
                for slug, idp in sorted(self.registry.items())]

    def get_idp(self, slug: str) -> dict[str, Any]:
        idp = self.idp(slug)
        detail = self._summary(slug, idp, self._health().get(slug, {}))
        with self.db.transaction() as session:
            record = session.get(IdpRecord, slug)
            detail["settings"] = json.loads(record.settings_json) if record else None
            detail["metadata_url"] = record.metadata_url if record else None
            detail["metadata_fetch_error"] = record.metadata_fetch_error if record else None
        detail["versions"] = self.versions(slug) if detail["source"] == "api" else []
        return detail

    def _summary(self, slug: str, idp: IdentityProvider, health: dict[str, Any]) -> dict[str, Any]:
        now = self._now()
        certificates = certificate_report(idp.metadata, now)
        warnings = {c["warning"] for c in certificates if c["warning"]}
        valid_until = idp.metadata.valid_until
        if valid_until is not None:
            days = (valid_until - now).total_seconds() / 86400
            if days <= 0:
                warnings.add("metadata_expired")
            elif days < WARN_DAYS[1]:
                warnings.add("metadata_expires_within_7_days")
        return {
            "slug": slug,
            "source": self.registry.source(slug),
            "display_name": idp.display_name,
            "entity_id": idp.metadata.entity_id,
            "sso_url": idp.sso_url,
            "acs_url": self.bridge.settings.acs_url(slug),
            "certificates": certificates,
            "metadata_valid_until": valid_until.isoformat() if valid_until else None,
            "warnings": sorted(warnings),
            **health,
        }

    def _health(self) -> dict[str, dict[str, Any]]:
        """Last successful login and last refusal per IdP, from the audit trail."""
        health: dict[str, dict[str, Any]] = {}
        with self.db.transaction() as session:
            rows = session.execute(
                select(AuditEvent.idp_slug, AuditEvent.outcome, func.max(AuditEvent.at))
                .where(AuditEvent.event == "login")
                .group_by(AuditEvent.idp_slug, AuditEvent.outcome)).all()
            for slug, outcome, at in rows:
                if slug is None:
                    continue
                entry = health.setdefault(slug, {})
                if outcome == "success":
                    entry["last_login_at"] = at
                else:
                    last = session.scalars(select(AuditEvent).where(
                        AuditEvent.idp_slug == slug, AuditEvent.event == "login",
                        AuditEvent.outcome == outcome, AuditEvent.at == at).limit(1)).first()
                    entry["last_error_at"] = at
                    entry["last_error_code"] = last.code if last else None
        return health

    def versions(self, slug: str) -> list[dict[str, Any]]:
        if not SLUG_RE.match(slug):
            raise NotFound("idp_unknown", f"No IdP {slug[:64]!r}.")
        with self.db.transaction() as session:
            record = session.get(IdpRecord, slug)
            rows = session.scalars(select(IdpMetadataVersion)
                                   .where(IdpMetadataVersion.slug == slug)
                                   .order_by(IdpMetadataVersion.id.desc()))
            return [{"id": v.id, "status": v.status, "source": v.source, "sha256": v.sha256,
                     "created_at": v.created_at, "created_by": v.created_by,
                     "applied_at": v.applied_at, "applied_by": v.applied_by,
                     "in_force": record is not None and record.version_id == v.id,
                     "diff": json.loads(v.diff_json)} for v in rows]

    def version_xml(self, slug: str, version_id: int) -> str:
        _known_version_id(version_id)
        with self.db.transaction() as session:
            version = session.get(IdpMetadataVersion, version_id)
            if version is None or version.slug != slug:
                raise NotFound("version_unknown", "No such metadata version.")
            return version.xml

    def sp_metadata(self, slug: str) -> bytes:
        idp = self.idp(slug)
        settings = self.bridge.settings
        keys = self.bridge.sp_keys
        return sp_metadata(settings.sp_entity_id, [settings.acs_url(slug)],
                           keys.encryption_certificates(), [settings.slo_url(slug)],
                           signing_certificates=keys.signing_certificates(),
                           authn_requests_signed=idp.signs_authn_requests)

    def idp(self, slug: str) -> IdentityProvider:
        idp = self.registry.get(slug) if SLUG_RE.match(slug) else None
        if idp is None:
            raise NotFound("idp_unknown", f"No IdP {slug!r}.")
        return idp

    # --- creating, settings, deleting --------------------------------------------------------------

    def create_idp(self, slug: str, *, xml: bytes | None, url: str | None,
                   settings: dict[str, Any], actor: str) -> dict[str, Any]:
        if not SLUG_RE.match(slug or ""):
            raise InvalidInput("slug: must match [a-z0-9][a-z0-9-]{0,62}")
        if slug in self.registry.files:
            raise Conflict(f"slug: {slug!r} is declared as a file in idp_metadata/; change the file")
        with self.db.transaction() as session:
            if session.get(IdpRecord, slug) is not None:
                raise Conflict(f"slug: {slug!r} already exists")
        fetched = None
        if url is not None:
            fetched = fetch_metadata(url, policy=self.fetch_policy)
            xml = fetched.body
        if not xml:
            raise InvalidInput("metadata: upload a document or give a metadata URL")
        settings_json = self._validated_settings(slug, settings)
        idp = self._validated(slug, xml, settings_json)
        entity_id = idp.metadata.entity_id
        self._check_entity_id_free(slug, entity_id)
        self._check_endpoints_free(slug, idp)
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                self._claim_entity_id(session, slug, entity_id)
                version = self._new_version(slug, xml, "url" if url else "upload", actor, now,
                                            metadata_diff(None, idp.metadata), status="applied")
                session.add(version)
                session.flush()
                session.add(IdpRecord(slug=slug, version_id=version.id,
                                      settings_json=settings_json, metadata_url=url,
                                      created_at=now, updated_at=now,
                                      metadata_etag=fetched.etag if fetched else None,
                                      metadata_last_modified=(fetched.last_modified if fetched
                                                              else None),
                                      metadata_fetched_at=now if fetched else None))
                audit.record(session, at=now, event="idp_created", outcome="success",
                             idp_slug=slug,
                             detail={"actor": actor, "entity_id": entity_id,
                                     "metadata_url": url, "version": version.id,
                                     "settings": json.loads(settings_json)})
        except IntegrityError:
            raise self._lost_race(slug, entity_id) from None
        self.registry.invalidate()
        return self.get_idp(slug)

    def update_settings(self, slug: str, settings: dict[str, Any], actor: str) -> dict[str, Any]:
        record = self._managed(slug)
        settings_json = self._validated_settings(slug, settings)
        self._validated(slug, self.version_xml(slug, record.version_id or 0).encode(),
                        settings_json)
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(IdpRecord, slug, with_for_update=True)
            assert row is not None
            before = json.loads(row.settings_json)
            row.settings_json = settings_json
            row.updated_at = now
            audit.record(session, at=now, event="idp_settings_changed", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "before": before,
                                                "after": json.loads(settings_json)})
        self.registry.invalidate()
        return self.get_idp(slug)

    def set_metadata_url(self, slug: str, url: str | None, actor: str) -> dict[str, Any]:
        if url is not None:
            from bridge.admin.fetch import check_url

            check_url(url)
        self._managed(slug)
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(IdpRecord, slug, with_for_update=True)
            assert row is not None
            before = row.metadata_url
            row.metadata_url, row.metadata_etag, row.metadata_last_modified = url, None, None
            row.updated_at = now
            audit.record(session, at=now, event="idp_metadata_url_changed", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "before": before, "after": url})
        self.registry.invalidate()
        return self.get_idp(slug)

    def delete_idp(self, slug: str, actor: str) -> None:
        record = self._managed(slug)
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(IdpRecord, slug)
            if row is not None:
                session.delete(row)
            held = session.get(IdpEntityId, slug)
            if held is not None and held.source == "api":
                session.delete(held)
            # Logins through a deleted IdP end with it: nobody vouches for them any more, and an
            # IdP created later under the same slug must not inherit them. Codes not yet
            # exchanged are spent for the same reason.
            ended = refresh_tokens.revoke_families(session, RefreshFamily.idp_slug == slug,
                                                   now=now, reason="idp_deleted")
            spend_codes(session, AuthorizationCode.idp_slug == slug, now=now)
            audit.record(session, at=now, event="idp_deleted", outcome="success", idp_slug=slug,
                         detail={"actor": actor, "version": record.version_id,
                                 "settings": json.loads(record.settings_json),
                                 "logins_ended": ended})
        self.registry.invalidate()

    # --- metadata versions -------------------------------------------------------------------------

    def propose_metadata(self, slug: str, *, xml: bytes | None = None, url: str | None = None,
                         actor: str) -> dict[str, Any]:
        """A new metadata version with its diff; applied at once if the IdP's policy allows."""
        record = self._managed(slug)
        source = "upload"
        if xml is None:
            target = url or record.metadata_url
            if not target:
                raise InvalidInput("metadata: upload a document or set a metadata URL")
            fetched = fetch_metadata(target, policy=self.fetch_policy)
            xml, source = fetched.body, "url"
        assert xml is not None
        return self._propose(slug, record, xml, source, actor)

    def refresh(self, slug: str, *, actor: str = "scheduler") -> dict[str, Any]:
        """Fetch the IdP's metadata URL (conditionally) and propose what changed."""
        record = self._managed(slug)
        if not record.metadata_url:
            raise InvalidInput(f"IdP {slug} has no metadata URL")
        now = self.clock.now()
        try:
            fetched = fetch_metadata(record.metadata_url, policy=self.fetch_policy,
                                     etag=record.metadata_etag,
                                     last_modified=record.metadata_last_modified)
            if fetched.status == 304 or fetched.body is None:
                outcome: dict[str, Any] = {"status": "not_modified"}
            else:
                outcome = self._propose(slug, record, fetched.body, "url", actor)
        except ConfigError as error:
            # What was in force stays in force; the admin sees why the refresh failed.
            with self.db.transaction() as session:
                row = session.get(IdpRecord, slug)
                if row is not None:
                    row.metadata_fetch_error = str(error)[:1000]
                    row.metadata_fetched_at = now
                audit.record(session, at=now, event="idp_metadata_refresh", outcome="refused",
                             idp_slug=slug, detail={"actor": actor, "error": str(error)[:500]})
            raise
        with self.db.transaction() as session:
            row = session.get(IdpRecord, slug)
            if row is not None:
                row.metadata_fetched_at, row.metadata_fetch_error = now, None
                # Validators are kept only for a document that was accepted (or unchanged), so a
                # refused one is fetched again next time rather than answered with 304.
                if fetched.status == 200:
                    row.metadata_etag, row.metadata_last_modified = (fetched.etag,
                                                                     fetched.last_modified)
        return outcome

    def refresh_due(self, *, every: bool = False) -> dict[str, str]:
        """Refresh every API-managed IdP whose metadata URL is due; one IdP's failure does not
        stop the others. An IdP is due when ``refresh_interval`` has passed since its last fetch."""
        with self.db.transaction() as session:
            records = list(session.scalars(select(IdpRecord).where(
                IdpRecord.metadata_url.is_not(None))))
        now = self.clock.now()
        outcomes: dict[str, str] = {}
        for record in records:
            idp = self.registry.get(record.slug)
            if not every and record.metadata_fetched_at is not None and (
                    now - record.metadata_fetched_at < self.refresh_interval(
                        idp, record.metadata_fetched_at)):
                continue
            try:
                outcomes[record.slug] = str(self.refresh(record.slug)["status"])
            except ConfigError as error:
                outcomes[record.slug] = f"failed: {error}"
            except Exception as error:  # noqa: BLE001 - one IdP's bug must not starve the others
                log.exception("metadata refresh of IdP %s failed unexpectedly", record.slug)
                outcomes[record.slug] = f"failed: internal error ({type(error).__name__})"
        if any(o.startswith("failed: internal") for o in outcomes.values()):
            raise RefreshFailed(outcomes)  # so the background job counts as failed
        return outcomes

    @staticmethod
    def refresh_interval(idp: IdentityProvider | None, fetched_at: float) -> float:
        """Seconds from a fetch to the next: the IdP's ``metadata_refresh_seconds`` (at most 7
        days), shortened by the document in force's ``cacheDuration`` (SAML Metadata §2.3.1: how
        long a copy may be cached) and by half the time its ``validUntil`` left at that fetch,
        so a fresh copy arrives before it expires; never under MIN_REFRESH_SECONDS."""
        if idp is None:
            return 6 * 3600
        interval = float(idp.settings.metadata_refresh_seconds)
        metadata = idp.metadata
        if metadata.cache_duration_seconds is not None:
            interval = min(interval, metadata.cache_duration_seconds)
        if metadata.valid_until is not None:
            interval = min(interval, (metadata.valid_until.timestamp() - fetched_at) / 2)
        return max(interval, MIN_REFRESH_SECONDS)

    def _propose(self, slug: str, record: IdpRecord, xml: bytes, source: str,
                 actor: str) -> dict[str, Any]:
        # None when the IdP is stored but the registry could not load it (the reason is in the
        # log): the new version is then compared with nothing and waits for an admin.
        current = self.registry.get(slug)
        proposed = self._validated(slug, xml, record.settings_json)
        self._check_entity_id_free(slug, proposed.metadata.entity_id)
        self._check_endpoints_free(slug, proposed)
        diff = metadata_diff(current.metadata if current else None, proposed.metadata)
        # Which document is newer is read from the documents themselves, never from when they
        # were fetched: a replayed old document is fetched "now" too.
        order = (document_order(current.metadata, proposed.metadata) if current
                 else "not_comparable")
        diff["document"] = {
            "order": order,
            "valid_until": _iso(proposed.metadata.valid_until),
            "published_at": _iso(proposed.metadata.published_at),
            "cache_duration_seconds": proposed.metadata.cache_duration_seconds,
        }
        readded = self._readded_certificates(slug, current, proposed) if current else []
        diff["certificates_readded"] = readded
        if diff["identical"]:
            if order != "newer":
                return {"status": "identical", "diff": diff}
            # A renewal (same facts, a later validUntil or publication): nothing the policy
            # governs changes, and without it the document in force would expire.
            diff["renewal"] = True
        policy = (current or proposed).settings.metadata_auto_apply
        withheld = []
        if current is None:
            withheld.append("the metadata in force could not be loaded (see the log), so nothing "
                            "can be compared with it")
        elif order in ("older", "same"):
            withheld.append("the document is not newer than the one in force (by its "
                            + ("publication time" if proposed.metadata.published_at
                               and current.metadata.published_at else "validUntil") + ")")
        elif order == "not_comparable":
            withheld.append("the document in force is dated and this one carries no comparable "
                            "date (mdrpi:PublicationInfo creationInstant or validUntil), so it "
                            "cannot be shown to be newer")
        stale_since = _stale_since(proposed.metadata, self.clock.now())
        if stale_since is not None:
            # SAML Metadata §2.3.1: a copy may be cached for cacheDuration after it was published;
            # a document past that says by itself that it is out of date (a replay, say).
            withheld.append(f"the document is out of date by its own terms: published "
                            f"{_iso(proposed.metadata.published_at)} to be cached for "
                            f"{proposed.metadata.cache_duration_seconds} s, so until "
                            f"{_iso(stale_since)}")
        if readded:
            withheld.append("it brings back certificates this IdP dropped before: "
                            + ", ".join(c["sha256"][:16] for c in readded))
        automatic = not withheld and (
            diff.get("renewal") or policy == "all"
            or (policy == "additions" and diff["only_certificate_additions"]))
        diff["auto_apply_withheld"] = withheld
        now = self.clock.now()
        with self.db.transaction() as session:
            version = self._new_version(slug, xml, source, actor, now, diff,
                                        status="pending")
            session.add(version)
            session.flush()
            version_id = version.id
            audit.record(session, at=now, event="idp_metadata_proposed", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "version": version_id,
                                                "source": source, "diff": diff})
        if automatic:
            reason = "renewal" if diff.get("renewal") else f"policy:{policy}"
            # Applied only over the version it was compared with: if another change got in
            # first, it waits for a person.
            if self._apply(slug, version_id, proposed.metadata.entity_id,
                           actor=f"{reason} ({actor})", over=record.version_id):
                self.registry.invalidate()
                return {"status": "applied", "version": version_id, "diff": diff}
        return {"status": "pending", "version": version_id, "diff": diff,
                **({"withheld": withheld} if withheld else {})}

    def apply_version(self, slug: str, version_id: int, *, actor: str) -> dict[str, Any]:
        record = self._managed(slug)
        xml = self.version_xml(slug, version_id)
        idp = self._validated(slug, xml.encode(), record.settings_json)
        self._check_entity_id_free(slug, idp.metadata.entity_id)
        self._check_endpoints_free(slug, idp)
        self._apply(slug, version_id, idp.metadata.entity_id, actor=actor)
        self.registry.invalidate()
        return self.get_idp(slug)

    def _apply(self, slug: str, version_id: int, entity_id: str, *, actor: str,
               over: int | None = None) -> bool:
        """Put a version in force, its entity ID claimed in the same transaction. With ``over``,
        only if that version is still the one in force (else False, nothing changed)."""
        now = self.clock.now()
        _known_version_id(version_id)
        try:
            with self.db.transaction() as session:
                row = session.get(IdpRecord, slug, with_for_update=True)
                version = session.get(IdpMetadataVersion, version_id)
                if row is None:
                    raise NotFound("idp_unknown", f"No IdP {slug!r}.")
                if version is None or version.slug != slug:
                    raise NotFound("version_unknown", "No such metadata version.")
                if version.status == "discarded":
                    raise Conflict(f"version {version_id} was discarded")
                if over is not None and row.version_id != over:
                    return False
                self._claim_entity_id(session, slug, entity_id)
                before = row.version_id
                for previous in session.scalars(select(IdpMetadataVersion).where(
                        IdpMetadataVersion.slug == slug, IdpMetadataVersion.status == "applied")):
                    previous.status = "superseded"
                version.status, version.applied_at, version.applied_by = "applied", now, actor
                row.version_id, row.updated_at = version_id, now
                audit.record(session, at=now, event="idp_metadata_applied", outcome="success",
                             idp_slug=slug, detail={"actor": actor, "before": before,
                                                    "after": version_id,
                                                    "entity_id": entity_id})
        except IntegrityError:
            raise self._lost_race(slug, entity_id) from None
        return True

    def restore_version(self, slug: str, version_id: int, *, actor: str) -> dict[str, Any]:
        """Roll back: an earlier version becomes a new applied version (history is never
        rewritten). Made and put in force in one transaction, so a refusal leaves nothing."""
        record = self._managed(slug)
        xml = self.version_xml(slug, version_id)
        current = self.registry.get(slug)  # None: stored, but not loadable as it is
        restored = self._validated(slug, xml.encode(), record.settings_json)
        entity_id = restored.metadata.entity_id
        self._check_entity_id_free(slug, entity_id)
        self._check_endpoints_free(slug, restored)
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                row = session.get(IdpRecord, slug, with_for_update=True)
                if row is None:
                    raise NotFound("idp_unknown", f"No IdP {slug!r}.")
                self._claim_entity_id(session, slug, entity_id)
                for previous in session.scalars(select(IdpMetadataVersion).where(
                        IdpMetadataVersion.slug == slug, IdpMetadataVersion.status == "applied")):
                    previous.status = "superseded"
                version = self._new_version(
                    slug, xml.encode(), "restore", actor, now,
                    {**metadata_diff(current.metadata if current else None, restored.metadata),
                     "restored_from": version_id}, status="applied")
                session.add(version)
                session.flush()
                before, row.version_id, row.updated_at = row.version_id, version.id, now
                audit.record(session, at=now, event="idp_metadata_applied", outcome="success",
                             idp_slug=slug, detail={"actor": actor, "before": before,
                                                    "after": version.id, "restored_from": version_id,
                                                    "entity_id": entity_id})
        except IntegrityError:
            raise self._lost_race(slug, entity_id) from None
        self.registry.invalidate()
        return self.get_idp(slug)

    def discard_version(self, slug: str, version_id: int, *, actor: str) -> None:
        self._managed(slug)
        _known_version_id(version_id)
        now = self.clock.now()
        with self.db.transaction() as session:
            version = session.get(IdpMetadataVersion, version_id)
            if version is None or version.slug != slug or version.status != "pending":
                raise Conflict("only a pending version of this IdP can be discarded")
            version.status = "discarded"
            audit.record(session, at=now, event="idp_metadata_discarded", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "version": version_id})

    # --- helpers -----------------------------------------------------------------------------------

    def _managed(self, slug: str) -> IdpRecord:
        if not SLUG_RE.match(slug):  # a NUL or a newline in a path is no slug of ours
            raise NotFound("idp_unknown", f"No IdP {slug[:64]!r}.")
        if slug in self.registry.files:
            raise Conflict(f"IdP {slug!r} is declared as a file in idp_metadata/; change the file")
        with self.db.transaction() as session:
            record = session.get(IdpRecord, slug)
        if record is None:
            raise NotFound("idp_unknown", f"No IdP {slug!r}.")
        return record

    def _validated_settings(self, slug: str, settings: dict[str, Any]) -> str:
        if not isinstance(settings, dict):
            raise InvalidInput("settings: must be an object")
        return json.dumps(settings, sort_keys=True, default=str)

    def _validated(self, slug: str, xml: bytes, settings_json: str) -> IdentityProvider:
        """Parse metadata and settings exactly as they would be served; raise with locations."""
        idp = load_managed_idp(slug, xml.decode("utf-8", errors="replace"), settings_json,
                               version_id=None, now=self._now(), check_expiry=True)
        pinned = idp.settings.metadata_signing_certificate
        if pinned:
            verify_metadata_signature(xml, pinned)
        check_idp_initiated_targets(self.bridge.settings, {slug: idp})
        if idp.binding_problems():
            raise ConfigError([f"IdP {slug} settings: {p}" for p in idp.binding_problems()])
        return idp

    def _check_entity_id_free(self, slug: str, entity_id: str) -> None:
        """Early refusal of a proposal whose entity ID another IdP holds; the binding check is
        ``_claim_entity_id``, in the transaction that puts a version in force."""
        with self.db.transaction() as session:
            holder = session.scalars(select(IdpEntityId).where(
                IdpEntityId.entity_id == entity_id, IdpEntityId.slug != slug)).first()
            if holder is not None:
                raise self._in_use(entity_id, holder.slug, holder.source)
        self._check_files(slug, entity_id)

    def _check_endpoints_free(self, slug: str, idp: IdentityProvider) -> None:
        """Refuse metadata whose Single Logout service would share an origin with another IdP's
        endpoints, or whose endpoints share one with another IdP's Single Logout service, naming
        that IdP (docs/decisions/0021-one-idp-per-endpoint.md). Two changes at once that clash
        are both stored, and the registry then serves neither."""
        self.registry.invalidate()  # every change made so far, on any node
        others = {s: i.metadata for s, i in self.registry.in_force().items() if s != slug}
        found = clashes(idp.metadata, others, self.registry.shared_origins)
        if found:
            files = self.registry.files
            raise Conflict(["metadata: " + clash.describe(
                "a file in idp_metadata/" if clash.other_slug in files
                else "managed through the admin API") for clash in found],
                code="idp_endpoint_in_use")

    def _claim_entity_id(self, session: Session, slug: str, entity_id: str) -> None:
        """Record ``entity_id`` as the one ``slug`` answers to, in the caller's transaction.
        The row is read first for a precise refusal; the unique constraint on
        ``idp_entity_ids.entity_id`` decides between two transactions that both read it free
        (the loser's flush raises IntegrityError, see ``_lost_race``)."""
        self._check_files(slug, entity_id)
        holder = session.scalars(select(IdpEntityId).where(
            IdpEntityId.entity_id == entity_id)).first()
        if holder is not None and holder.slug != slug:
            raise self._in_use(entity_id, holder.slug, holder.source)
        row = session.get(IdpEntityId, slug)
        if row is None:
            session.add(IdpEntityId(slug=slug, entity_id=entity_id, source="api"))
        elif row.source != "api":
            raise Conflict(f"slug: {slug!r} is declared as a file in idp_metadata/")
        else:
            row.entity_id = entity_id
        session.flush()

    def _check_files(self, slug: str, entity_id: str) -> None:
        # This node's own files, whatever another node entered in idp_entity_ids.
        for other, idp in self.registry.files.items():
            if other != slug and idp.metadata.entity_id == entity_id:
                raise self._in_use(entity_id, other, "file")

    def _lost_race(self, slug: str, entity_id: str) -> ConfigError:
        """What to say after a unique constraint refused a write: read who won."""
        with self.db.transaction() as session:
            holder = session.scalars(select(IdpEntityId).where(
                IdpEntityId.entity_id == entity_id)).first()
            if holder is not None and holder.slug != slug:
                return self._in_use(entity_id, holder.slug, holder.source)
        return Conflict(f"IdP {slug!r} was changed at the same time by another request; "
                        "reload and try again")

    @staticmethod
    def _in_use(entity_id: str, holder: str, source: str) -> Conflict:
        where = "a file in idp_metadata/" if source == "file" else "managed through the admin API"
        return Conflict(f"metadata: entity ID {entity_id!r} is already used by IdP {holder} "
                        f"({where}); an entity ID belongs to one IdP, since sub is derived from "
                        "it", code="idp_entity_id_in_use")

    def _readded_certificates(self, slug: str, current: IdentityProvider,
                              proposed: IdentityProvider) -> list[dict[str, Any]]:
        """Certificates the proposal adds that this IdP had in force before and dropped since: a
        withdrawn key never comes back without a person, however the document is dated."""
        in_force = {c.sha256_fingerprint for c in current.metadata.signing_certificates}
        added = [c for c in proposed.metadata.signing_certificates
                 if c.sha256_fingerprint not in in_force]
        if not added:
            return []
        seen: set[str] = set()
        with self.db.transaction() as session:
            for diff_json in session.scalars(select(IdpMetadataVersion.diff_json).where(
                    IdpMetadataVersion.slug == slug, IdpMetadataVersion.applied_at.is_not(None))):
                # added + kept is the whole certificate set of a version (metadata_diff).
                diff = json.loads(diff_json)
                seen.update(c["sha256"] for key in ("certificates_added", "certificates_kept")
                            for c in diff.get(key, ()))
        return [{"sha256": c.sha256_fingerprint, "not_after": c.not_after.isoformat()}
                for c in added if c.sha256_fingerprint in seen]

    @staticmethod
    def _new_version(slug: str, xml: bytes, source: str, actor: str, now: float,
                     diff: dict[str, Any], *, status: str) -> IdpMetadataVersion:
        return IdpMetadataVersion(
            slug=slug, xml=xml.decode("utf-8", errors="replace"),
            sha256=hashlib.sha256(xml).hexdigest(), status=status, source=source, created_at=now,
            created_by=actor, applied_at=now if status == "applied" else None,
            applied_by=actor if status == "applied" else None, diff_json=json.dumps(diff))


# Version ids are 32-bit integers on PostgreSQL (and at most 64-bit on SQLite): a larger one in a
# URL is no version, not a database error (a 500).
MAX_VERSION_ID = 2**31 - 1


def _known_version_id(version_id: int) -> None:
    if not 0 < version_id <= MAX_VERSION_ID:
        raise NotFound("version_unknown", "No such metadata version.")


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
