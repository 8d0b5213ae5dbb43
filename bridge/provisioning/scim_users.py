"""The SCIM 2.0 ``Users`` resource of one IdP (RFC 7644 §3): create, get, search by filter,
replace, patch, delete, as Okta's and Entra ID's provisioning clients use it. Requests are
parsed, validated and patched by scim2-models (Entra's ``"Replace"`` and ``"False"`` included);
what this module adds is storage, uniqueness of ``userName`` per IdP, and the consequence of
``active``: a user made inactive or deleted is deprovisioned (``bridge.oauth.deprovisioned``),
one made active again is reinstated. Every change is audited with the token that made it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from scim2_models import Context, Meta, PatchOp, SCIMException
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import NotFound, ProvisioningConflict, ProvisioningError
from bridge.idps.settings import IdentityProvider
from bridge.oauth.deprovisioned import deprovision, reinstate
from bridge.provisioning.matching import subject_of
from bridge.provisioning.scim_model import User
from bridge.provisioning.scim_search import Page, search_users
from bridge.store.models import ScimUser

if TYPE_CHECKING:
    from bridge.services import Services

MAX_NAME = 256  # userName and externalId: the columns they are stored and looked up in


@dataclass(frozen=True)
class Caller:
    """Who is provisioning: the IdP whose token was presented, and that token's id."""

    idp: IdentityProvider
    token_id: str

    @property
    def actor(self) -> str:
        return f"scim:{self.token_id}"


class ScimUsers:
    def __init__(self, services: Services) -> None:
        self.services = services

    def location(self, slug: str, user_id: str = "") -> str:
        base = f"{self.services.settings.base_url}/scim/v2/{slug}/Users"
        return f"{base}/{user_id}" if user_id else base

    # --- reads -------------------------------------------------------------------------------

    def get(self, caller: Caller, user_id: str) -> dict[str, Any]:
        with self.services.db.transaction() as session:
            return self._render(self._row(session, caller, user_id))

    def search(self, caller: Caller, *, filter_text: str | None, start_index: int,
               count: int) -> dict[str, Any]:
        with self.services.db.transaction() as session:
            page: Page = search_users(session, caller.idp.slug, filter_text, start_index, count,
                                      load=_stored)
            resources = [self._render(row) for row in page.rows]
        return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": page.total, "startIndex": start_index,
                "itemsPerPage": len(resources), "Resources": resources}

    # --- writes ------------------------------------------------------------------------------

    def create(self, caller: Caller, body: object) -> dict[str, Any]:
        user = _parse(body, Context.RESOURCE_CREATION_REQUEST)
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            row = ScimUser(id=uuid.uuid4().hex, idp_slug=caller.idp.slug, version=0,
                           created_at=now, user_name_key="", active=True)
            self._store(session, caller, row, user, now, operation="create", new=True)
            return self._render(row)

    def replace(self, caller: Caller, user_id: str, body: object) -> dict[str, Any]:
        user = _parse(body, Context.RESOURCE_REPLACEMENT_REQUEST)
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            row = self._row(session, caller, user_id, lock=True)
            self._store(session, caller, row, user, now, operation="replace")
            return self._render(row)

    def patch(self, caller: Caller, user_id: str, body: object) -> dict[str, Any]:
        try:
            patch = PatchOp[User].model_validate(
                _checked(body), scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        except (ValidationError, SCIMException) as error:
            raise _refused(error) from None
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            row = self._row(session, caller, user_id, lock=True)
            user = _stored(row)
            try:
                patch.patch(user)
                # The patched resource must still be a valid one (a userName removed, say).
                user = _parse(user.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST),
                              Context.RESOURCE_REPLACEMENT_REQUEST)
            except (ValidationError, SCIMException) as error:
                raise _refused(error) from None
            self._store(session, caller, row, user, now, operation="patch")
            return self._render(row)

    def delete(self, caller: Caller, user_id: str) -> None:
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            row = self._row(session, caller, user_id, lock=True)
            if row.subject:
                deprovision(session, idp_slug=row.idp_slug, subject=row.subject, source="scim",
                            reason="scim_deleted", now=now, actor=caller.actor)
            session.delete(row)
            audit.record(session, at=now, event="scim_user", outcome="success",
                         idp_slug=row.idp_slug, subject=row.subject,
                         detail={"actor": caller.actor, "operation": "delete", "id": row.id})

    # --- storage -----------------------------------------------------------------------------

    def _row(self, session: Session, caller: Caller, user_id: str, *, lock: bool = False
             ) -> ScimUser:
        query = select(ScimUser).where(ScimUser.id == user_id, ScimUser.idp_slug == caller.idp.slug)
        row = session.scalars(query.with_for_update() if lock else query).first()
        if row is None:
            raise NotFound("scim_user_unknown", "No such user at this IdP.")
        return row

    def _store(self, session: Session, caller: Caller, row: ScimUser, user: User,
               now: float, *, operation: str, new: bool = False) -> None:
        """Write ``user`` into ``row`` and act on what changed: a new subject, a change of
        ``active``. The caller's transaction holds the row."""
        idp = caller.idp
        name_key = user.user_name.lower() if user.user_name else ""
        taken = session.scalar(select(ScimUser.id).where(
            ScimUser.idp_slug == idp.slug, ScimUser.user_name_key == name_key,
            ScimUser.id != row.id))
        if taken is not None:
            raise ProvisioningConflict("scim_conflict",
                                       "A user with this userName already exists at this IdP.",
                                       scim_type="uniqueness")
        before_subject, before_active = (None, True) if new else (row.subject, row.active)
        subject = subject_of(idp, user.user_name or "", user.external_id)
        active = user.active is not False  # RFC 7643 §4.1.1: no value is no statement of "inactive"
        user.password = None  # never stored, never returned
        row.user_name_key, row.external_id = name_key, user.external_id
        row.subject, row.active = subject, active
        row.resource_json = json.dumps(
            user.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST), sort_keys=True)
        row.version, row.updated_at = row.version + 1, now
        if new:
            session.add(row)
        session.flush()  # the unique index settles a race the check above did not see
        if before_subject and before_subject != subject and not before_active:
            # The person this user stood for is no longer named by it.
            reinstate(session, idp_slug=idp.slug, subject=before_subject, now=now,
                      actor=caller.actor)
        if subject and not active:
            deprovision(session, idp_slug=idp.slug, subject=subject, source="scim",
                        reason="scim_deactivated", now=now, actor=caller.actor)
        elif subject and (new or not before_active or before_subject != subject):
            # Only a reactivation (or a new user) lifts a refusal: a routine profile update of
            # an active user leaves one a security event made in force.
            reinstate(session, idp_slug=idp.slug, subject=subject, now=now, actor=caller.actor)
        audit.record(session, at=now, event="scim_user", outcome="success", idp_slug=idp.slug,
                     subject=subject, detail={"actor": caller.actor, "operation": operation,
                                              "id": row.id, "active": active,
                                              "was_active": before_active})

    def _render(self, row: ScimUser) -> dict[str, Any]:
        user = _stored(row)
        user.id = row.id
        user.meta = Meta(resource_type="User", created=_time(row.created_at),
                         last_modified=_time(row.updated_at), version=f'W/"{row.version}"',
                         location=self.location(row.idp_slug, row.id))
        rendered: dict[str, Any] = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        return rendered


def _stored(row: ScimUser) -> User:
    return User.model_validate(json.loads(row.resource_json))


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _parse(body: object, context: Context) -> User:
    try:
        user = User.model_validate(_checked(body), scim_ctx=context)
    except (ValidationError, SCIMException) as error:
        raise _refused(error) from None
    for name, value in (("userName", user.user_name), ("externalId", user.external_id)):
        if value is not None and len(value) > MAX_NAME:
            raise ProvisioningError("scim_invalid", f"{name}: at most {MAX_NAME} characters.",
                                    scim_type="invalidValue")
    return user


def _checked(body: object) -> dict[str, Any]:
    """A JSON object with no NUL character anywhere (PostgreSQL refuses it in text)."""
    if not isinstance(body, dict):
        raise ProvisioningError("scim_invalid", "The body must be a JSON object.",
                                scim_type="invalidSyntax")
    if "\\u0000" in json.dumps(body):
        raise ProvisioningError("scim_invalid", "Values may not contain NUL characters.",
                                scim_type="invalidValue")
    return body


def _refused(error: ValidationError | SCIMException) -> ProvisioningError:
    if isinstance(error, SCIMException):
        return ProvisioningError("scim_invalid", error.detail, scim_type=error.scim_type or None)
    first = error.errors()[0]
    scim_type = (first.get("ctx") or {}).get("scim_type") or "invalidValue"
    where = ".".join(str(part) for part in first.get("loc", ()))
    return ProvisioningError("scim_invalid", f"{where}: {first['msg']}" if where else first["msg"],
                             scim_type=scim_type)
