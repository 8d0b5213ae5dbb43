"""An API-managed IdP's metadata versions: proposed from an upload or a fetch of its URL, applied
by its policy or by a person, restored or discarded (the rules are in bridge.idps.lifecycle's
docstring and docs/decisions/0012). What reads and checks the stored IdPs is here too."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bridge import audit
from bridge.errors import ConfigError, Conflict, FetchRefused, InvalidInput, NotFound
from bridge.idps.auto_apply import applies_without_person, iso, splittable, withheld_reasons
from bridge.idps.certificate_split import with_added_certificates
from bridge.idps.fetch import Fetched, FetchPolicy, fetch_metadata, internal_host
from bridge.idps.history import (
    changed_meanwhile,
    check_pin_in_force,
    known_version_id,
    metadata_text,
    new_version,
    readded_certificates,
)
from bridge.idps.metadata_diff import document_order, metadata_diff
from bridge.idps.metadata_signature import verify_metadata_signature
from bridge.idps.overview import IdpOverview
from bridge.idps.refresh import RefreshFailed, refresh_interval
from bridge.idps.registry import load_managed_idp
from bridge.idps.settings import SLUG_RE, IdentityProvider, parse_idp_settings, stored_value
from bridge.idps.settings_text import check_nesting
from bridge.idps.targets import check_idp_initiated_targets
from bridge.idps.uniqueness import check_endpoints_free, check_entity_id_free, claim_entity_id, lost_race
from bridge.ip_forms import nat64_networks
from bridge.store.models import IdpMetadataVersion, IdpRecord

if TYPE_CHECKING:
    from bridge.services import Services

# The logger keeps the name it had before the module moved: log filters and alerts name it.
log = logging.getLogger("bridge.admin.idps")


class _WaitsForAPerson(Exception):  # noqa: N818 - control flow, not an error
    """An automatic apply found the settings it was checked with replaced: rolled back."""


class MetadataVersions(IdpOverview):
    """The metadata of API-managed IdPs; ``IdpAdmin`` adds creating, settings and deleting."""

    def __init__(self, bridge: Services, fetch_policy: FetchPolicy | None = None) -> None:
        super().__init__(bridge)
        # The one place the policy follows the settings: web process, jobs and CLI alike.
        self.fetch_policy = fetch_policy or FetchPolicy(
            allow_private=bridge.settings.insecure_metadata_private_addresses,
            nat64_prefixes=nat64_networks(bridge.settings.nat64_prefixes))

    def propose_metadata(self, slug: str, *, xml: bytes | None = None, url: str | None = None,
                         actor: str) -> dict[str, Any]:
        """A new metadata version with its diff; applied at once if the IdP's policy allows."""
        record = self._managed(slug)
        source = "upload"
        if xml is None:
            target = url or record.metadata_url
            if not target:
                raise InvalidInput("metadata: upload a document or set a metadata URL")
            fetched = self.fetch(slug, target, record.settings_json, actor)
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
            fetched = self.fetch(slug, record.metadata_url, record.settings_json, actor,
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
                    now - record.metadata_fetched_at < refresh_interval(
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

    def _propose(self, slug: str, record: IdpRecord, xml: bytes, source: str,
                 actor: str) -> dict[str, Any]:
        # None when the IdP is stored but the registry could not load it (the reason is in the
        # log): the new version is then compared with nothing and waits for an admin.
        current = self.registry.get(slug)
        proposed = self._validated(slug, xml, record.settings_json)
        check_entity_id_free(self.db, self.registry, slug, proposed.metadata.entity_id)
        check_endpoints_free(self.registry, slug, proposed)
        diff = metadata_diff(current.metadata if current else None, proposed.metadata)
        # Which document is newer is read from the documents themselves, never from when they
        # were fetched: a replayed old document is fetched "now" too.
        order = (document_order(current.metadata, proposed.metadata) if current
                 else "not_comparable")
        diff["document"] = {
            "order": order,
            "valid_until": iso(proposed.metadata.valid_until),
            "published_at": iso(proposed.metadata.published_at),
            "cache_duration_seconds": proposed.metadata.cache_duration_seconds,
        }
        readded = readded_certificates(self.db, slug, current, proposed) if current else []
        diff["certificates_readded"] = readded
        if diff["identical"]:
            if order != "newer":
                return {"status": "identical", "diff": diff}
            # A renewal (same facts, a later validUntil or publication): nothing the policy
            # governs changes, and without it the document in force would expire.
            diff["renewal"] = True
        policy = (current or proposed).settings.metadata_auto_apply
        withheld = withheld_reasons(current, proposed, order, readded, self.clock.now())
        automatic = applies_without_person(diff, policy, withheld)
        diff["auto_apply_withheld"] = withheld
        now = self.clock.now()
        with self.db.transaction() as session:
            version = new_version(slug, xml, source, actor, now, diff,
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
                           actor=f"{reason} ({actor})", checked_with=record.settings_json,
                           over=record.version_id):
                self.registry.invalidate()
                return {"status": "applied", "version": version_id, "diff": diff}
        elif current is not None and not withheld and policy != "none" and splittable(diff) and (
                not proposed.settings.metadata_signing_certificate):
            # A pinned signature covers whole documents only: then nothing is split off.
            applied = self._apply_added_certificates(slug, record, current, xml, version_id,
                                                     diff, actor)
            if applied is not None:
                return {"status": "pending", "version": version_id, "diff": diff,
                        "certificates_applied": applied}
        return {"status": "pending", "version": version_id, "diff": diff,
                **({"withheld": withheld} if withheld else {})}

    def _apply_added_certificates(self, slug: str, record: IdpRecord, current: IdentityProvider,
                                  xml: bytes, pending_id: int, diff: dict[str, Any],
                                  actor: str) -> int | None:
        """Put the document in force, with the proposal's new certificates added, in force as a
        version of its own; the id of that version, or None if it could not be."""
        added = {c["sha256"] for c in diff["certificates_added"]}
        try:
            merged = with_added_certificates(
                self.version_xml(slug, record.version_id or 0).encode(), xml, added)
            idp = self._validated(slug, merged, record.settings_json)
        except ConfigError as error:  # the document in force no longer passes: all waits
            log.warning("IdP %s: new certificates not applied on their own: %s", slug, error)
            return None
        partial = metadata_diff(current.metadata, idp.metadata)
        if not partial["only_certificate_additions"]:
            return None
        now = self.clock.now()
        with self.db.transaction() as session:
            version = new_version(slug, merged, "certificates", actor, now,
                                  {**partial, "certificates_from": pending_id}, status="pending")
            session.add(version)
            session.flush()
            split_id = version.id
            audit.record(session, at=now, event="idp_metadata_proposed", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "version": split_id,
                                                "source": "certificates",
                                                "certificates_from": pending_id,
                                                "diff": partial})
        if not self._apply(slug, split_id, idp.metadata.entity_id,
                           actor=f"policy:additions ({actor})",
                           checked_with=record.settings_json, over=record.version_id):
            # Another change got in first: the proposal it came from waits for a person and
            # carries the same certificates, so this one is of no further use.
            with contextlib.suppress(Conflict, NotFound):  # discarded, or the IdP deleted
                self.discard_version(slug, split_id, actor=f"policy:additions ({actor})")
            return None
        # Marked once in force: the proposal's page says its certificates are in force as it.
        with self.db.transaction() as session:
            pending = session.get(IdpMetadataVersion, pending_id)
            assert pending is not None
            pending.diff_json = json.dumps({**diff, "certificates_applied_as": split_id})
        self.registry.invalidate()
        return split_id

    def apply_version(self, slug: str, version_id: int, *, actor: str) -> dict[str, Any]:
        record = self._managed(slug)
        xml = self.version_xml(slug, version_id)
        idp = self._validated(slug, xml.encode(), record.settings_json)
        check_entity_id_free(self.db, self.registry, slug, idp.metadata.entity_id)
        check_endpoints_free(self.registry, slug, idp)
        self._apply(slug, version_id, idp.metadata.entity_id, actor=actor,
                    checked_with=record.settings_json)
        self.registry.invalidate()
        return self.get_idp(slug)

    def _apply(self, slug: str, version_id: int, entity_id: str, *, actor: str,
               checked_with: str, over: int | None = None) -> bool:
        """Put a version in force, its entity ID claimed in the same transaction, if the settings
        it was checked with (``checked_with``) are still the IdP's. With ``over`` (an apply
        that no person asked for), only if that version is still the one in force and those
        settings still the IdP's: else False, nothing changed, and the version waits for a
        person."""
        now = self.clock.now()
        known_version_id(version_id)
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
                claim_entity_id(session, self.registry, slug, entity_id)
                before = row.version_id
                for previous in session.scalars(select(IdpMetadataVersion).where(
                        IdpMetadataVersion.slug == slug, IdpMetadataVersion.status == "applied")):
                    previous.status = "superseded"
                version.status, version.applied_at, version.applied_by = "applied", now, actor
                row.version_id, row.updated_at = version_id, now
                check_pin_in_force(session, row)
                if row.settings_json != checked_with:
                    if over is not None:
                        raise _WaitsForAPerson  # undoes what this transaction did
                    raise changed_meanwhile("metadata: the IdP's settings")
                audit.record(session, at=now, event="idp_metadata_applied", outcome="success",
                             idp_slug=slug, detail={"actor": actor, "before": before,
                                                    "after": version_id,
                                                    "entity_id": entity_id})
        except IntegrityError:
            raise lost_race(self.db, slug, entity_id) from None
        except _WaitsForAPerson:
            return False
        return True

    def restore_version(self, slug: str, version_id: int, *, actor: str) -> dict[str, Any]:
        """Roll back: an earlier version becomes a new applied version (history is never
        rewritten). Made and put in force in one transaction, so a refusal leaves nothing."""
        record = self._managed(slug)
        xml = self.version_xml(slug, version_id)
        current = self.registry.get(slug)  # None: stored, but not loadable as it is
        restored = self._validated(slug, xml.encode(), record.settings_json)
        entity_id = restored.metadata.entity_id
        check_entity_id_free(self.db, self.registry, slug, entity_id)
        check_endpoints_free(self.registry, slug, restored)
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                row = session.get(IdpRecord, slug, with_for_update=True)
                if row is None:
                    raise NotFound("idp_unknown", f"No IdP {slug!r}.")
                if row.settings_json != record.settings_json:
                    raise changed_meanwhile("metadata: the IdP's settings")
                claim_entity_id(session, self.registry, slug, entity_id)
                for previous in session.scalars(select(IdpMetadataVersion).where(
                        IdpMetadataVersion.slug == slug, IdpMetadataVersion.status == "applied")):
                    previous.status = "superseded"
                version = new_version(
                    slug, xml.encode(), "restore", actor, now,
                    {**metadata_diff(current.metadata if current else None, restored.metadata),
                     "restored_from": version_id}, status="applied")
                session.add(version)
                session.flush()
                before, row.version_id, row.updated_at = row.version_id, version.id, now
                check_pin_in_force(session, row)
                audit.record(session, at=now, event="idp_metadata_applied", outcome="success",
                             idp_slug=slug, detail={"actor": actor, "before": before,
                                                    "after": version.id, "restored_from": version_id,
                                                    "entity_id": entity_id})
        except IntegrityError:
            raise lost_race(self.db, slug, entity_id) from None
        self.registry.invalidate()
        return self.get_idp(slug)

    def discard_version(self, slug: str, version_id: int, *, actor: str) -> None:
        self._managed(slug)
        known_version_id(version_id)
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
        return json.dumps(check_nesting(settings), sort_keys=True, default=str)

    def fetch(self, slug: str, url: str, settings_json: str, actor: str, *,
              etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """Fetch ``url`` for this IdP under its policy. A fetch from one of its internal hosts is
        an audit event whatever its outcome (who, which IdP, which host; never an address or why
        it failed): the setting must not be a way to probe the internal network unseen."""
        policy = self.policy_for(slug, settings_json)
        host = internal_host(url, policy)
        if host is None:
            return fetch_metadata(url, policy=policy, etag=etag, last_modified=last_modified)
        try:
            fetched = fetch_metadata(url, policy=policy, etag=etag, last_modified=last_modified)
        except FetchRefused as refused:
            self._internal_fetch_event(slug, host, actor, refused.code)
            raise
        self._internal_fetch_event(slug, host, actor, None)
        return fetched

    def _internal_fetch_event(self, slug: str, host: str, actor: str, code: str | None) -> None:
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), event="idp_metadata_internal_fetch",
                         outcome="success" if code is None else "failure", code=code,
                         idp_slug=slug, detail={"actor": actor, "host": host})

    def policy_for(self, slug: str, settings_json: str) -> FetchPolicy:
        """The fetch policy for this IdP's metadata URL: the bridge's, with the IdP's internal
        hosts (the settings as they are stored, or about to be)."""
        settings = parse_idp_settings(stored_value(settings_json), source=f"IdP {slug} settings")
        return replace(self.fetch_policy, internal_hosts=settings.metadata_internal_hosts)

    def _validated(self, slug: str, xml: bytes, settings_json: str) -> IdentityProvider:
        """Parse metadata and settings exactly as they would be served; raise with locations."""
        idp = load_managed_idp(slug, metadata_text(slug, xml), settings_json,
                               version_id=None, now=self._now(), check_expiry=True)
        pinned = idp.settings.metadata_signing_certificate
        if pinned:
            verify_metadata_signature(xml, pinned)
        check_idp_initiated_targets(self.bridge.settings, {slug: idp})
        if idp.binding_problems():
            raise ConfigError([f"IdP {slug} settings: {p}" for p in idp.binding_problems()])
        return idp
