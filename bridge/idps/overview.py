"""What the admin API and pages show of the IdPs in force: their certificates and metadata with
the warnings due, and the health of their logins from the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select

from bridge.errors import NotFound
from bridge.idps.history import version_history, version_xml
from bridge.idps.registry import IdpRegistry
from bridge.idps.settings import (
    SLUG_RE,
    IdentityProvider,
    settings_fingerprint,
    settings_object,
)
from bridge.saml.metadata import IdpMetadata
from bridge.saml.sp import sp_metadata
from bridge.store.db import Database
from bridge.store.models import AuditEvent, IdpRecord
from bridge.unicode_text import as_text

if TYPE_CHECKING:
    from bridge.services import Services

WARN_DAYS = (30, 7)


def certificate_report(metadata: IdpMetadata, now: dt.datetime) -> list[dict[str, Any]]:
    report = []
    for cert in metadata.signing_certificates:
        days = (cert.not_after - now).total_seconds() / 86400
        warning = ("expired" if days < 0 else "expires_within_7_days" if days < WARN_DAYS[1]
                   else "expires_within_30_days" if days < WARN_DAYS[0] else None)
        report.append({"sha256": cert.sha256_fingerprint, "not_after": cert.not_after.isoformat(),
                       "days_left": int(days), "warning": warning})
    return report


def login_health(db: Database) -> dict[str, dict[str, Any]]:
    """Last successful login and last refusal per IdP, from the audit trail."""
    health: dict[str, dict[str, Any]] = {}
    with db.transaction() as session:
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



def is_tested(row: IdpRecord) -> bool:
    """Whether a test login has passed with the metadata and the settings in force."""
    return (row.version_id is not None and row.tested_version_id == row.version_id
            and row.tested_settings == settings_fingerprint(row.settings_json))

class IdpOverview:
    """The IdPs in force as the admin API and pages show them."""

    def __init__(self, bridge: Services) -> None:
        self.bridge = bridge
        self.db = bridge.db
        self.clock = bridge.clock

    @property
    def registry(self) -> IdpRegistry:
        return self.bridge.idps

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)

    def list_idps(self) -> list[dict[str, Any]]:
        """Every IdP in force, and those managed here that are stored but not loaded: drafts
        (no metadata yet), and IdPs whose metadata in force or settings no longer load."""
        health = login_health(self.db)
        with self.db.transaction() as session:
            records = list(session.scalars(select(IdpRecord)))
        loaded = self.registry.in_force()
        if any(self._not_read_yet(record, loaded) for record in records):
            self.registry.invalidate()
        listed = {slug: self._summary(slug, idp, health.get(slug, {}))
                  for slug, idp in self.registry.in_force().items()}
        for record in records:
            if record.slug not in listed and record.slug not in self.registry.files:
                listed[record.slug] = self._record_summary(record)
        return [listed[slug] for slug in sorted(listed)]

    def _not_read_yet(self, record: IdpRecord, loaded: dict[str, IdentityProvider]) -> bool:
        """Whether an IdP with metadata is stored that this node's registry has neither loaded
        nor failed to load: made or changed through another node since its last reading."""
        return (record.version_id is not None and record.slug not in loaded
                and self.registry.load_problems(record.slug) is None)

    def get_idp(self, slug: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            record = session.get(IdpRecord, slug) if SLUG_RE.match(slug) else None
        if record is not None and self._not_read_yet(record, self.registry.in_force()):
            self.registry.invalidate()
        if (record is not None and slug not in self.registry.files
                and slug not in self.registry.in_force()):
            detail = self._record_summary(record)
        else:
            detail = self._summary(slug, self._loaded(slug), login_health(self.db).get(slug, {}))
        detail["settings"] = stored_settings(record.settings_json) if record else None
        # Which stored settings these are: a form rendered from them sends it back, and a save
        # is refused once the settings have changed since (docs/decisions/0029).
        detail["settings_fingerprint"] = (settings_fingerprint(record.settings_json)
                                          if record else None)
        detail["metadata_url"] = record.metadata_url if record else None
        detail["metadata_fetch_error"] = record.metadata_fetch_error if record else None
        detail["version_id"] = record.version_id if record else None
        detail["tested_version_id"] = record.tested_version_id if record else None
        # Whether a test login passed with what is in force: the metadata, and the settings.
        detail["tested"] = record is not None and is_tested(record)
        detail["settings_tested"] = (record is not None and record.tested_settings
                                     == settings_fingerprint(record.settings_json))
        detail["versions"] = self.versions(slug) if detail["source"] == "api" else []
        return detail

    def _record_summary(self, record: IdpRecord) -> dict[str, Any]:
        """An API-managed IdP that is stored but not loaded: a draft (no metadata yet), or one
        whose metadata in force or settings no longer load. What the record alone says, and for
        the second the problems, so that its admins can mend it (or delete it)."""
        settings = stored_settings(record.settings_json)
        problems = None
        if record.version_id is not None:
            problems = self.registry.load_problems(record.slug) or []
        # Read as stored: an earlier version may have stored what the settings now refuse.
        name, mapping = settings.get("display_name"), settings.get("mapping")
        preset = mapping.get("preset") if isinstance(mapping, dict) else None
        return {"slug": record.slug, "source": "api", "state": record.state,
                "display_name": name if isinstance(name, str) and name else record.slug,
                "vendor": preset if isinstance(preset, str) else None,
                "entity_id": None, "sso_url": None,
                "acs_url": self.bridge.settings.acs_url(record.slug), "certificates": [],
                "metadata_valid_until": None, "warnings": [], "served": False,
                "not_served_reason": None if problems is None else "not_loadable",
                "load_problems": _shown(problems)}

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
        reason = self.registry.not_served_reason(slug)
        return {
            "slug": slug,
            "source": self.registry.source(slug),
            "state": "live" if idp.live else "testing",
            "vendor": idp.settings.mapping.preset,
            "display_name": idp.display_name,
            "entity_id": idp.metadata.entity_id,
            "sso_url": idp.sso_url,
            "acs_url": self.bridge.settings.acs_url(slug),
            "certificates": certificates,
            "metadata_valid_until": valid_until.isoformat() if valid_until else None,
            "warnings": sorted(warnings),
            # False for one that loads but no login may use: its entity ID or an endpoint
            # clashes with another IdP's, or its pinned certificate does not sign its metadata
            # (the reason's code says which, the log the detail). Its admins see it, and mend it.
            "served": reason is None,
            "not_served_reason": reason,
            "load_problems": None,
            **health,
        }

    def versions(self, slug: str) -> list[dict[str, Any]]:
        return version_history(self.db, slug)

    def version_xml(self, slug: str, version_id: int) -> str:
        return version_xml(self.db, slug, version_id)

    def sp_metadata(self, slug: str) -> bytes:
        """Our SP metadata for one IdP, a draft's too (it is what the IdP is set up with)."""
        idp = self.registry.get(slug) if SLUG_RE.match(slug) else None
        if idp is not None:
            signs = idp.signs_authn_requests
        else:
            with self.db.transaction() as session:
                record = session.get(IdpRecord, slug) if SLUG_RE.match(slug) else None
            if record is None:
                raise NotFound("idp_unknown", f"No IdP {slug[:64]!r}.")
            # Without the IdP's metadata, only an explicit setting says we sign.
            signs = settings_object(record.settings_json).get("sign_requests") == "always"
        settings = self.bridge.settings
        keys = self.bridge.sp_keys
        return sp_metadata(settings.sp_entity_id, [settings.acs_url(slug)],
                           keys.encryption_certificates(), [settings.slo_url(slug)],
                           signing_certificates=keys.signing_certificates(),
                           authn_requests_signed=signs)

    def _loaded(self, slug: str) -> IdentityProvider:
        """An IdP that loads, served or not: what the admin views show and changes start from.
        Whatever acts through an IdP (a test login, a preview of its claims) takes ``idp``."""
        idp = self.registry.in_force().get(slug) if SLUG_RE.match(slug) else None
        if idp is None:
            raise NotFound("idp_unknown", f"No IdP {slug!r}.")
        return idp

    def idp(self, slug: str) -> IdentityProvider:
        idp = self.registry.get(slug) if SLUG_RE.match(slug) else None
        if idp is None:
            raise NotFound("idp_unknown", f"No IdP {slug!r}.")
        return idp


def _shown(problems: list[str] | None, most: int = 10, length: int = 500) -> list[str] | None:
    """At most ``most`` problems of at most ``length`` characters each: a page stays readable
    whatever a document stored by an earlier version holds."""
    if problems is None:
        return None
    shown = [p if len(p) <= length else p[:length] + "…" for p in problems[:most]]
    if len(problems) > most:
        shown.append(f"and {len(problems) - most} more (the log has them all)")
    return shown


def stored_settings(settings_json: str) -> dict[str, Any]:
    """An IdP's stored settings as they are shown: a string stored before strings that are not
    Unicode text were refused reads with U+FFFD in place, rather than breaking the page."""
    return cast("dict[str, Any]", as_text(settings_object(settings_json)))
