"""The SCIM 2.0 ``Users`` resource of one IdP (RFC 7644 §3): create, get, search by filter,
replace, patch, delete, as Okta's and Entra ID's provisioning clients use it. Requests are
parsed, validated and patched by scim2-models (Entra's ``"Replace"`` and ``"False"`` included);
what this module adds is storage, uniqueness of ``userName`` per IdP, and the consequence of
``active``: a user made inactive or deleted is deprovisioned (``bridge.oauth.deprovisioned``),
one made active again is reinstated. Every change is audited with the token that made it."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from scim2_models import Context, Meta, PatchOp, ResponseParameters, SCIMException, SearchRequest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import NotFound, ProvisioningConflict, ProvisioningError
from bridge.idps.settings import IdentityProvider
from bridge.oauth.deprovisioned import deprovision, reinstate
from bridge.provisioning.matching import subject_of
from bridge.provisioning.scim_model import (
    POLICY,
    User,
    entra_manager,
    name_key,
    same_name,
    stored_keys,
)
from bridge.provisioning.scim_search import (
    MAX_COUNT,
    Page,
    check_filter_length,
    check_filter_tree,
    search_users,
)
from bridge.provisioning.scim_subjects import (
    forget_user,
    inactive_user_for,
    remember_rename,
    subjects_of,
)
from bridge.store.models import ScimUser

if TYPE_CHECKING:
    from bridge.services import Services

MAX_NAME = 256  # userName and externalId: the columns they are stored and looked up in
MAX_OPERATIONS = 100  # in one PATCH
MAX_DEPTH = 16  # of a body's objects and arrays: a PATCH of an enterprise manager nests 5
Shown = ResponseParameters[User] | None  # attributes / excludedAttributes (RFC 7644 §3.9)


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

    def base_url(self, slug: str) -> str:
        return f"{self.services.settings.base_url}/scim/v2/{slug}"

    def location(self, slug: str, user_id: str) -> str:
        return f"{self.base_url(slug)}/Users/{user_id}"

    # --- reads -------------------------------------------------------------------------------

    def get(self, caller: Caller, user_id: str, shown: Shown = None) -> dict[str, Any]:
        with self.services.db.transaction() as session:
            return self._render(self._row(session, caller, user_id), shown)

    def search(self, caller: Caller, *, filter_text: str | None, start_index: int,
               count: int, shown: Shown = None) -> dict[str, Any]:
        with self.services.db.transaction() as session:
            page: Page = search_users(session, caller.idp.slug, filter_text, start_index, count,
                                      load=self._shown_user)
            resources = [self._render(row, shown) for row in page.rows]
        return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": page.total, "startIndex": start_index,
                "itemsPerPage": len(resources), "Resources": resources}

    def search_posted(self, caller: Caller, body: object) -> dict[str, Any]:
        """``POST /Users/.search`` (RFC 7644 §3.4.3): the query of a GET, in a SearchRequest."""
        body = _checked(body)
        check_filter_length(body.get("filter"))  # before scim2-models parses it
        try:
            request = SearchRequest[User].model_validate(body,
                                                         scim_ctx=Context.SEARCH_REQUEST)
        except (ValidationError, SCIMException) as error:
            raise _refused(error) from None
        if request.sort_by:
            raise ProvisioningError("scim_invalid", "sortBy: sorting is not supported.",
                                    scim_type="invalidValue")
        return self.search(caller, filter_text=str(request.filter) if request.filter else None,
                           start_index=request.start_index or 1,
                           count=MAX_COUNT if request.count is None else request.count,
                           shown=ResponseParameters[User](
                               attributes=request.attributes,
                               excluded_attributes=request.excluded_attributes))

    # --- writes ------------------------------------------------------------------------------

    def create(self, caller: Caller, body: object, shown: Shown = None) -> dict[str, Any]:
        user = _parse(body, Context.RESOURCE_CREATION_REQUEST)
        now = self.services.clock.now()
        try:
            with self.services.db.transaction() as session:
                row = ScimUser(id=uuid.uuid4().hex, idp_slug=caller.idp.slug, version=0,
                               created_at=now, user_name_key="", active=True)
                self._store(session, caller, row, user, now, operation="create", new=True)
                return self._render(row, shown)
        except sa_exc.IntegrityError:
            # Two creates of one userName at once: the unique index lets one through.
            raise _taken() from None

    def replace(self, caller: Caller, user_id: str, body: object,
                shown: Shown = None) -> dict[str, Any]:
        user = _parse(body, Context.RESOURCE_REPLACEMENT_REQUEST)
        now = self.services.clock.now()
        try:
            with self.services.db.transaction() as session:
                row = self._row(session, caller, user_id, lock=True)
                self._store(session, caller, row, user, now, operation="replace")
                return self._render(row, shown)
        except sa_exc.IntegrityError:
            # A rename to a userName another request took at the same moment.
            raise _taken() from None

    def patch(self, caller: Caller, user_id: str, body: object,
              shown: Shown = None) -> dict[str, Any]:
        body = _checked(body)
        operations = body.get("Operations")
        if isinstance(operations, list) and len(operations) > MAX_OPERATIONS:
            # Applying them costs more than linear time, in a transaction that holds the user
            # (and on SQLite every writer): Okta and Entra ID send a handful.
            raise ProvisioningError("scim_invalid",
                                    f"Operations: at most {MAX_OPERATIONS} in one PATCH.",
                                    scim_type="invalidValue")
        for operation in operations if isinstance(operations, list) else []:
            check_filter_length(operation.get("path") if isinstance(operation, dict) else None,
                                "path")
        if "Operations" in body:
            body = {**body, "Operations": entra_manager(body["Operations"])}
        try:
            patch = PatchOp[User].model_validate(
                body, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY)
        except (ValidationError, SCIMException) as error:
            raise _refused(error) from None
        for parsed in patch.operations or []:  # a path's filter is evaluated as a search's is
            if parsed.path is not None:
                check_filter_tree(parsed.path.ast, "path")
        now = self.services.clock.now()
        try:
            with self.services.db.transaction() as session:
                row = self._row(session, caller, user_id, lock=True)
                user = _stored(row)
                try:
                    patch.patch(user, scim_policy=POLICY)
                except (ValidationError, SCIMException) as error:
                    raise _refused(error) from None
                _check_names(user)  # a PATCH may not leave a user without a userName
                self._store(session, caller, row, user, now, operation="patch")
                return self._render(row, shown)
        except sa_exc.IntegrityError:
            raise _taken() from None  # as replace()

    def delete(self, caller: Caller, user_id: str) -> None:
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            row = self._row(session, caller, user_id, lock=True)
            for subject in subjects_of(session, row):  # the names it had before included
                deprovision(session, idp_slug=row.idp_slug, subject=subject, source="scim",
                            reason="scim_deleted", now=now, actor=caller.actor)
            forget_user(session, row.id)
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
        key = _user_name_key(session, row, user.user_name or "", new=new)
        before_subject, before_active = (None, True) if new else (row.subject, row.active)
        subject = subject_of(idp, user.user_name or "", user.external_id)
        # RFC 7643 §4.1.1: no value is no statement of "inactive" for a new user; for a stored
        # one, a replacement or patch that leaves active out (or nulls or removes it) says
        # nothing about it either: the resource is kept as sent, the user's state stays. Only
        # an explicit true lifts a deactivation.
        active = (before_active if user.active is None and not new
                  else user.active is not False)
        user.password = None  # never stored, never returned
        row.user_name_key, row.external_id = key, user.external_id
        row.subject, row.active = subject, active
        row.resource_json = json.dumps(
            user.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST, scim_policy=POLICY),
            sort_keys=True)
        row.version, row.updated_at = row.version + 1, now
        if new:
            session.add(row)
        session.flush()  # the unique index settles a race the check above did not see
        # Asked before the rename is remembered: an inactive user that named the person still
        # holds the refusal, whatever this user is called now.
        held = subject is not None and inactive_user_for(session, idp_slug=idp.slug,
                                                         subject=subject, other_than=row.id)
        remember_rename(session, idp_slug=idp.slug, user_id=row.id, before=before_subject,
                        after=subject)
        if not active:
            # Every person the user stands or stood for: a rename made with or before the
            # deactivation must not leave the logins made under the old name alive.
            for person in subjects_of(session, row):
                deprovision(session, idp_slug=idp.slug, subject=person, source="scim",
                            reason="scim_deactivated", now=now, actor=caller.actor)
        elif (subject and user.active is True and not held
              and (new or not before_active or subject == before_subject)):
            # Only the IdP saying "active": true lifts a refusal (a create that leaves it out
            # stores the user and lifts nothing): a reactivation, a new user, or an explicit
            # true for the person the user already names (stored active after a create without
            # it, yet still refused), and only while no other of its users standing or having
            # stood for the same person is inactive. A refusal an event made is lifted by an
            # event only (reinstate()). A rename lifts nothing, neither for the people the user
            # named before (deactivated is deactivated, whatever the record is called now) nor
            # for the one it names now.
            reinstate(session, idp_slug=idp.slug, subject=subject, now=now, actor=caller.actor,
                      source="scim")
        audit.record(session, at=now, event="scim_user", outcome="success", idp_slug=idp.slug,
                     subject=subject, detail={"actor": caller.actor, "operation": operation,
                                              "id": row.id, "active": active,
                                              "was_active": before_active})

    def _shown_user(self, row: ScimUser) -> User:
        """The user as a client sees it: with ``id`` and ``meta``, which filters may name."""
        user = _stored(row)
        user.id = row.id
        user.meta = Meta(resource_type="User", created=_time(row.created_at),
                         last_modified=_time(row.updated_at), version=f'W/"{row.version}"',
                         location=self.location(row.idp_slug, row.id))
        return user

    def _render(self, row: ScimUser, shown: Shown = None) -> dict[str, Any]:
        user = self._shown_user(row)
        rendered: dict[str, Any] = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE,
                                                   response_parameters=shown, scim_policy=POLICY)
        return rendered


def _user_name_key(session: Session, row: ScimUser, user_name: str, *, new: bool) -> str:
    """The key ``row`` holds once named ``user_name``: its ``name_key``, refused as a duplicate
    when another user of the IdP holds it (in any form a key was ever stored in). A user that
    keeps its name (up to letter case) keeps the key it holds when another holds the new one:
    two users whose names the upgrade to NFKC_Casefold found folding together (migration 0019)
    stay two, each written to (deactivated) under its own name."""
    key = name_key(user_name) if user_name else ""
    if len(key) > MAX_NAME:  # NFKC and case folding can lengthen a name (U+FDFA: 18)
        raise ProvisioningError("scim_invalid", f"userName: at most {MAX_NAME} characters "
                                "once normalised.", scim_type="invalidValue")
    taken = session.scalar(select(ScimUser.id).where(
        ScimUser.idp_slug == row.idp_slug,
        ScimUser.user_name_key.in_(sorted(stored_keys(user_name)) if user_name else [""]),
        ScimUser.id != row.id).limit(1))
    if taken is None:
        return key
    if not new and same_name(user_name, _stored(row).user_name or ""):
        return row.user_name_key
    raise _taken()


def response_parameters(attributes: str | None, excluded: str | None) -> Shown:
    """The ``attributes`` / ``excludedAttributes`` query parameters, checked against the
    User schema."""
    if attributes is None and excluded is None:
        return None
    try:
        return ResponseParameters[User].model_validate(
            {"attributes": attributes, "excludedAttributes": excluded})
    except (ValidationError, SCIMException) as error:
        raise _refused(error) from None


def _taken() -> ProvisioningConflict:
    return ProvisioningConflict("scim_conflict",
                                "A user with this userName (compared in NFKC_Casefold form) "
                                "already exists at this IdP.",
                                scim_type="uniqueness")


def _stored(row: ScimUser) -> User:
    return User.model_validate(json.loads(row.resource_json), scim_policy=POLICY)


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _parse(body: object, context: Context) -> User:
    try:
        user = User.model_validate(_checked(body), scim_ctx=context, scim_policy=POLICY)
    except (ValidationError, SCIMException) as error:
        raise _refused(error) from None
    _check_names(user)
    return user


def _check_names(user: User) -> None:
    if not user.user_name:
        raise ProvisioningError("scim_invalid", "userName: required.", scim_type="invalidValue")
    for name, value in (("userName", user.user_name), ("externalId", user.external_id)):
        if value is not None and len(value) > MAX_NAME:
            raise ProvisioningError("scim_invalid", f"{name}: at most {MAX_NAME} characters.",
                                    scim_type="invalidValue")


def _checked(body: object) -> dict[str, Any]:
    """A JSON object nested at most ``MAX_DEPTH`` deep, with no NUL character (PostgreSQL
    refuses it in text) and no unpaired surrogate (no database or UTF-8 holds it) anywhere."""
    if not isinstance(body, dict):
        raise ProvisioningError("scim_invalid", "The body must be a JSON object.",
                                scim_type="invalidSyntax")
    pending: list[tuple[object, int]] = [(body, 1)]
    while pending:  # not recursive: the body may nest as deep as the JSON decoder follows
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ProvisioningError("scim_invalid", f"The body nests deeper than {MAX_DEPTH} "
                                        "levels.", scim_type="invalidSyntax")
            children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(value, str) and ("\x00" in value or _SURROGATE.search(value)):
            raise ProvisioningError("scim_invalid", "Values may not contain NUL characters or "
                                    "unpaired surrogates.", scim_type="invalidValue")
    return body


_SURROGATE = re.compile("[\ud800-\udfff]")


def _refused(error: ValidationError | SCIMException) -> ProvisioningError:
    if isinstance(error, SCIMException):
        return ProvisioningError("scim_invalid", error.detail, scim_type=error.scim_type or None)
    first = error.errors()[0]
    scim_type = (first.get("ctx") or {}).get("scim_type") or "invalidValue"
    where = ".".join(str(part) for part in first.get("loc", ()))
    return ProvisioningError("scim_invalid", f"{where}: {first['msg']}" if where else first["msg"],
                             scim_type=scim_type)
