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

import json
from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.exc import IntegrityError

from bridge import audit
from bridge.errors import ConfigError, Conflict, InvalidInput, NotFound, StaleChange
from bridge.idps.fetch import check_url
from bridge.idps.history import changed_meanwhile, check_pin_in_force, new_version
from bridge.idps.metadata_diff import metadata_diff
from bridge.idps.overview import stored_settings
from bridge.idps.settings import (
    IdentityProvider,
    parse_idp_settings,
    settings_fingerprint,
    stored_value,
)
from bridge.idps.stages import LIVE, IdpStages
from bridge.idps.uniqueness import (
    check_endpoints_free,
    check_entity_id_free,
    claim_entity_id,
    lost_race,
)
from bridge.oauth.deprovisioned import forget_provisioning, forget_scim
from bridge.oauth.revocation import end_logins
from bridge.saml.metadata import parse_idp_metadata
from bridge.store.models import (
    AdminSession,
    AdminToken,
    AuthnRequestRecord,
    AuthorizationCode,
    IdpEntityId,
    IdpRecord,
    RefreshFamily,
    TestLogin,
)

SETTINGS_CHANGED = ("settings: the settings changed since this page was loaded (another admin "
                    "saved them); nothing was saved. Reload the page to see them, then make "
                    "your change again.")


class IdpAdmin(IdpStages):
    """Every change to an API-managed IdP; reading is ``IdpOverview``'s, metadata versions are
    ``MetadataVersions``', drafts and going live ``IdpStages``'."""

    # --- creating, settings, deleting --------------------------------------------------------------

    def create_idp(self, slug: str, *, xml: bytes | None, url: str | None,
                   settings: dict[str, Any], actor: str) -> dict[str, Any]:
        """The one-shot creation, for automation: with its metadata, live at once (the caller
        vouches for it; audited as such). People start with a draft (``create_draft``)."""
        self._check_new_slug(slug)
        with self.db.transaction() as session:
            if session.get(IdpRecord, slug) is not None:
                raise Conflict(f"slug: {slug!r} already exists")
        settings_json = self._validated_settings(slug, settings)
        fetched = None
        if url is not None:
            fetched = self.fetch(slug, url, settings_json, actor)
            xml = fetched.body
        if not xml:
            raise InvalidInput("metadata: upload a document or give a metadata URL")
        idp = self._validated(slug, xml, settings_json)
        entity_id = idp.metadata.entity_id
        check_entity_id_free(self.db, self.registry, slug, entity_id)
        check_endpoints_free(self.registry, slug, idp)
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                claim_entity_id(session, self.registry, slug, entity_id)
                version = new_version(slug, xml, "url" if url else "upload", actor, now,
                                            metadata_diff(None, idp.metadata), status="applied")
                session.add(version)
                session.flush()
                session.add(IdpRecord(slug=slug, version_id=version.id,
                                      settings_json=settings_json, metadata_url=url,
                                      created_at=now, updated_at=now, state=LIVE,
                                      metadata_etag=fetched.etag if fetched else None,
                                      metadata_last_modified=(fetched.last_modified if fetched
                                                              else None),
                                      metadata_fetched_at=now if fetched else None))
                # What an earlier IdP of this slug left (a removed file's SCIM token and users).
                forgotten = forget_scim(session, idp_slug=slug, now=now)
                audit.record(session, at=now, event="idp_created", outcome="success",
                             idp_slug=slug,
                             detail={"actor": actor, "entity_id": entity_id, "state": LIVE,
                                     "metadata_url": url, "version": version.id,
                                     "settings": json.loads(settings_json),
                                     "scim_users_forgotten": forgotten})
        except IntegrityError:
            raise lost_race(self.db, slug, entity_id) from None
        self.registry.invalidate()
        return self.get_idp(slug)

    def checked_settings(self, slug: str, settings: dict[str, Any]) -> tuple[
            str, IdentityProvider | None]:
        """``settings`` as they would be stored, and the IdP as it would be in force with them
        (None for a draft, which has no metadata, and for an IdP whose metadata in force does
        not load); raise with every problem's location. Nothing is changed: saving and the
        settings page's preview both check through here."""
        record = self._managed(slug)
        settings_json = self._validated_settings(slug, settings)
        if record.version_id is not None:
            try:
                xml = self.version_xml(slug, record.version_id).encode()
            except NotFound:
                xml = None  # its version is missing: nothing in force to check against
            if xml is not None:
                try:
                    return settings_json, self._validated(slug, xml, settings_json)
                except ConfigError:
                    if self._loads(slug, xml):
                        raise
            # The metadata in force no longer loads, whatever the settings (a stricter check
            # of a later version): the settings are checked alone, as a draft's, so that its
            # admins can mend the two in turn. It stays unserved until a version that loads is
            # applied, and that version is checked with these settings.
        parse_idp_settings(json.loads(settings_json), source=f"IdP {slug} settings")
        return settings_json, None

    def _loads(self, slug: str, xml: bytes) -> bool:
        """Whether stored metadata loads at all, with any settings."""
        try:
            parse_idp_metadata(xml, source=f"IdP {slug}", now=self._now(), check_expiry=False)
        except ConfigError:
            return False
        return True

    def update_settings(self, slug: str, settings: dict[str, Any], actor: str, *,
                        based_on: str | Collection[str] | None = None,
                        stale: str = SETTINGS_CHANGED) -> dict[str, Any]:
        """Store ``settings``. ``based_on``: the fingerprint of the stored settings the change
        was made from (the settings page's; any of several, an API request's ``If-Match``); the
        change is refused (``StaleChange`` saying ``stale``, nothing saved) when the settings
        stored now are others."""
        # Read before the check, which reads it again: a version applied in between is at worst
        # refused below though the check saw it.
        checked_with = self._managed(slug).version_id
        settings_json, _ = self.checked_settings(slug, settings)
        now = self.clock.now()
        accepted = {based_on} if isinstance(based_on, str) else based_on
        with self.db.transaction() as session:
            row = session.get(IdpRecord, slug, with_for_update=True)
            assert row is not None
            if accepted is not None and settings_fingerprint(row.settings_json) not in accepted:
                raise StaleChange(stale, code="settings_changed")
            before = stored_value(row.settings_json)
            row.settings_json = settings_json
            row.updated_at = now
            check_pin_in_force(session, row)
            if row.version_id != checked_with:
                raise changed_meanwhile("settings: the IdP's metadata in force")
            audit.record(session, at=now, event="idp_settings_changed", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "before": before,
                                                "after": json.loads(settings_json)})
        self.registry.invalidate()
        detail = self.get_idp(slug)
        # The settings this request wrote, and their fingerprint (the API's ETag): read again,
        # they could already be another admin's, and a client that kept their fingerprint
        # would overwrite that admin's change unrefused.
        detail["settings"] = stored_settings(settings_json)
        detail["settings_fingerprint"] = settings_fingerprint(settings_json)
        return detail

    def set_metadata_url(self, slug: str, url: str | None, actor: str) -> dict[str, Any]:
        if url is not None:
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
        self._managed(slug)
        now = self.clock.now()
        with self.db.transaction() as session:
            # Locked and read again: of two deletions at once, the second finds nothing to
            # delete (404), rather than deleting and recording the deletion a second time.
            record = session.get(IdpRecord, slug, with_for_update=True)
            if record is None:
                raise NotFound("idp_unknown", f"No IdP {slug!r}.")
            session.delete(record)
            held = session.get(IdpEntityId, slug)
            if held is not None and held.source == "api":
                session.delete(held)
            # Logins through a deleted IdP end with it: nobody vouches for them any more, and an
            # IdP created later under the same slug must not inherit them. Codes not yet
            # exchanged are spent for the same reason.
            ended = end_logins(session, families=[RefreshFamily.idp_slug == slug],
                               codes=[AuthorizationCode.idp_slug == slug], now=now,
                               reason="idp_deleted")
            # So do the logins started through it and not finished: the IdP may come back
            # (restored, into testing), and what was asked of it then must not complete there.
            requests_ended = cast("CursorResult[Any]", session.execute(delete(
                AuthnRequestRecord).where(AuthnRequestRecord.idp_slug == slug))).rowcount
            forget_provisioning(session, idp_slug=slug, now=now)
            # Its test logins too: what arrived (attributes, NameID) is kept for its settings
            # page's preview only, and goes with the IdP.
            test_logins_deleted = cast("CursorResult[Any]", session.execute(delete(
                TestLogin).where(TestLogin.slug == slug))).rowcount
            # And the admin pages' sessions signed in through it (tickets not yet exchanged
            # included): an admin whose IdP was removed does not keep administering the bridge.
            admin_sessions_ended = cast("CursorResult[Any]", session.execute(delete(
                AdminSession).where(AdminSession.idp_slug == slug))).rowcount
            # And the admin API tokens its people made: the same power as their sessions.
            admin_tokens_revoked = cast("CursorResult[Any]", session.execute(update(
                AdminToken).where(AdminToken.owner_idp_slug == slug,
                                  AdminToken.revoked_at.is_(None)).values(
                revoked_at=now))).rowcount
            audit.record(session, at=now, event="idp_deleted", outcome="success", idp_slug=slug,
                         detail={"actor": actor, "version": record.version_id,
                                 "settings": stored_value(record.settings_json),
                                 "metadata_url": record.metadata_url, "state": record.state,
                                 "logins_ended": ended, "requests_ended": requests_ended,
                                 "admin_sessions_ended": admin_sessions_ended,
                                 "admin_tokens_revoked": admin_tokens_revoked,
                                 "test_logins_deleted": test_logins_deleted})
        self.registry.invalidate()
