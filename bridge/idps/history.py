"""An API-managed IdP's metadata versions: each applied one stays in the history and any can be
restored, so the certificates it once dropped are known."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.errors import ConfigError, Conflict, NotFound
from bridge.idps.metadata_signature import verify_metadata_signature
from bridge.idps.settings import SLUG_RE, IdentityProvider, settings_object
from bridge.store.db import Database
from bridge.store.models import IdpMetadataVersion, IdpRecord

# Version ids are 32-bit integers on PostgreSQL (and at most 64-bit on SQLite): a larger one in a
# URL is no version, not a database error (a 500).
MAX_VERSION_ID = 2**31 - 1


def version_history(db: Database, slug: str) -> list[dict[str, Any]]:
    if not SLUG_RE.match(slug):
        raise NotFound("idp_unknown", f"No IdP {slug[:64]!r}.")
    with db.transaction() as session:
        record = session.get(IdpRecord, slug)
        rows = session.scalars(select(IdpMetadataVersion)
                               .where(IdpMetadataVersion.slug == slug)
                               .order_by(IdpMetadataVersion.id.desc()))
        return [{"id": v.id, "status": v.status, "source": v.source, "sha256": v.sha256,
                 "created_at": v.created_at, "created_by": v.created_by,
                 "applied_at": v.applied_at, "applied_by": v.applied_by,
                 "in_force": record is not None and record.version_id == v.id,
                 "diff": json.loads(v.diff_json)} for v in rows]


def version_xml(db: Database, slug: str, version_id: int) -> str:
    known_version_id(version_id)
    with db.transaction() as session:
        version = session.get(IdpMetadataVersion, version_id)
        if version is None or version.slug != slug:
            raise NotFound("version_unknown", "No such metadata version.")
        return version.xml


def metadata_text(slug: str, xml: bytes) -> str:
    """The document as it is stored and served: its bytes as UTF-8, exactly, or ConfigError.
    A lossy decoding would store (and parse) other bytes than those whose pinned signature was
    checked: under a declared encoding such as GBK, each replaced byte shifts how the rest
    pairs up, and the two readings can hold different markup."""
    try:
        return xml.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"IdP {slug} metadata: not UTF-8 (byte {error.start}); save it as "
                          "UTF-8") from None


def changed_meanwhile(changed: str) -> Conflict:
    """A change to one half of an IdP (its settings, or its metadata in force) that was checked
    with the other half, which another change replaced before this one was written: the two
    were never checked together, so nothing is written."""
    return Conflict(f"{changed} changed meanwhile (another admin, or a scheduled metadata "
                    "refresh), after this change was checked with them; nothing was changed. "
                    "Reload and try again", code="idp_changed_meanwhile")


def check_pin_in_force(session: Session, row: IdpRecord) -> None:
    """As a write that sets an IdP's settings or the version in force ends, under the row's
    lock: with a pinned ``metadata_signing_certificate``, the document in force is signed by
    it. The checks made before the lock saw the settings and the version as they were then;
    another write in between (a pin set while a version was applied, or a scheduled refresh's
    apply) would otherwise leave a pin in force over a document it never signed."""
    if row.version_id is None:
        return
    pinned = settings_object(row.settings_json).get("metadata_signing_certificate")
    if not pinned:
        return
    version = session.get(IdpMetadataVersion, row.version_id)
    if version is None or version.slug != row.slug:
        return  # none in force (the registry serves it nowhere); the next version is checked
    try:
        verify_metadata_signature(version.xml.encode(), pinned)
    except ConfigError as error:
        raise Conflict(f"metadata: the settings or the metadata in force changed meanwhile, and "
                       f"the pinned certificate does not sign the document that would be in "
                       f"force ({'; '.join(error.problems)}); reload and try again",
                       code="idp_pin_not_satisfied") from None


def new_version(slug: str, xml: bytes, source: str, actor: str, now: float,
                diff: dict[str, Any], *, status: str) -> IdpMetadataVersion:
    return IdpMetadataVersion(
        slug=slug, xml=metadata_text(slug, xml),
        sha256=hashlib.sha256(xml).hexdigest(), status=status, source=source, created_at=now,
        created_by=actor, applied_at=now if status == "applied" else None,
        applied_by=actor if status == "applied" else None, diff_json=json.dumps(diff))


def readded_certificates(db: Database, slug: str, current: IdentityProvider,
                         proposed: IdentityProvider) -> list[dict[str, Any]]:
    """Certificates the proposal adds that this IdP had in force before and dropped since: a
    withdrawn key never comes back without a person, however the document is dated."""
    in_force = {c.sha256_fingerprint for c in current.metadata.signing_certificates}
    added = [c for c in proposed.metadata.signing_certificates
             if c.sha256_fingerprint not in in_force]
    if not added:
        return []
    seen: set[str] = set()
    with db.transaction() as session:
        for diff_json in session.scalars(select(IdpMetadataVersion.diff_json).where(
                IdpMetadataVersion.slug == slug, IdpMetadataVersion.applied_at.is_not(None))):
            # added + kept is the whole certificate set of a version (metadata_diff).
            diff = json.loads(diff_json)
            seen.update(c["sha256"] for key in ("certificates_added", "certificates_kept")
                        for c in diff.get(key, ()))
    return [{"sha256": c.sha256_fingerprint, "not_after": c.not_after.isoformat()}
            for c in added if c.sha256_fingerprint in seen]


def known_version_id(version_id: int) -> None:
    if not 0 < version_id <= MAX_VERSION_ID:
        raise NotFound("version_unknown", "No such metadata version.")
