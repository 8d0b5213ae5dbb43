"""Who may administer: admin API tokens for automation, and admin sessions for people who signed
in through the bridge's own SAML login with the admin role.

Tokens are 256-bit random strings shown once and stored as hashes, with an expiry; sessions are
random ids in an HttpOnly cookie, stored as hashes, with a CSRF token for the pages' forms.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import InvalidInput, NotFound
from bridge.idps.registry import IdpRegistry
from bridge.oauth.deprovisioned import is_deprovisioned, made_before_a_lifted_refusal_ended
from bridge.store.db import Database
from bridge.store.models import AdminSession, AdminToken
from bridge.tokens.secrets_util import new_secret, secret_hash

TOKEN_PREFIX = "bat_"  # recognisable in logs and secret scanners, never the secret itself
SESSION_SECONDS = 8 * 3600
TICKET_SECONDS = 120


@dataclass(frozen=True)
class Admin:
    """An authenticated administrator: a token or a person."""

    actor: str  # recorded in audit events: "token:<name>" or "user:<sub> (<name>)"
    csrf_token: str | None = None  # set for page sessions only
    # How the pages name a person: their name and e-mail as the IdP sent them.
    name: str | None = None
    email: str | None = None
    # The person this power is theirs (a session's, or a token's owner): (IdP slug, subject);
    # None for a token of the command line.
    owner: tuple[str, str] | None = None


class AdminAccess:
    def __init__(self, db: Database, clock: Any, idps: IdpRegistry) -> None:
        self.db = db
        self.clock = clock
        self.idps = idps  # where a person's admin power came from

    def _owner_stands(self, session: Session, *, idp_slug: str, subject: str,
                      since: float) -> bool:
        """Whether the person whose admin power made a session or token (at ``since``) still
        holds it: not deprovisioned, and their IdP neither removed nor made anew since."""
        if is_deprovisioned(session, idp_slug=idp_slug, subject=subject):
            return False
        # Refused after it (or while it was made) and reactivated since: it stays ended.
        if made_before_a_lifted_refusal_ended(session, idp_slug=idp_slug, subject=subject,
                                              made_at=since):
            return False
        return self.idps.stands_since(session, idp_slug, since)

    # --- tokens ------------------------------------------------------------------------------------

    def create_token(self, name: object, *, expires_in: float, actor: str,
                     owner: tuple[str, str] | None = None) -> tuple[str, str]:
        """Return (token id, the token itself: shown once, stored only as its hash).
        ``owner``: the person whose admin power made it (IdP slug, subject); deprovisioning
        them ends the token."""
        # A string the name column takes on both databases (a NUL character was a 500 on
        # PostgreSQL; a JSON object became its Python text).
        if (not isinstance(name, str) or not name or len(name) > 128
                or any(c < " " or c == "\x7f" for c in name)):
            raise InvalidInput("name: 1 to 128 characters, no control characters")
        if not 60 <= expires_in <= 366 * 86400:
            raise InvalidInput("expires_in: from one minute to a year")
        token_id = secrets.token_hex(8)
        token = TOKEN_PREFIX + new_secret()
        now = self.clock.now()
        with self.db.transaction() as session:
            session.add(AdminToken(id=token_id, token_hash=secret_hash(token), name=name,
                                   created_by=actor, created_at=now, expires_at=now + expires_in,
                                   owner_idp_slug=owner[0] if owner else None,
                                   owner_subject=owner[1] if owner else None))
            audit.record(session, at=now, event="admin_token_created", outcome="success",
                         detail={"actor": actor, "token_id": token_id, "name": name,
                                 "expires_at": now + expires_in,
                                 "owner": list(owner) if owner else None})
        return token_id, token

    def revoke_token(self, token_id: str, *, actor: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(AdminToken, token_id)
            if row is None:
                raise NotFound("token_unknown", "No such admin token.")
            row.revoked_at = row.revoked_at or now
            audit.record(session, at=now, event="admin_token_revoked", outcome="success",
                         detail={"actor": actor, "token_id": token_id, "name": row.name})

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return [{"id": t.id, "name": t.name, "created_by": t.created_by,
                     "created_at": t.created_at, "expires_at": t.expires_at,
                     "revoked_at": t.revoked_at, "last_used_at": t.last_used_at,
                     "owner": ({"idp": t.owner_idp_slug, "subject": t.owner_subject}
                               if t.owner_idp_slug is not None else None)}
                    for t in session.scalars(select(AdminToken).order_by(AdminToken.created_at))]

    def authenticate_token(self, token: str) -> Admin | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.scalars(select(AdminToken).where(
                AdminToken.token_hash == secret_hash(token))).first()
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                return None
            owner = None
            if row.owner_idp_slug is not None and row.owner_subject is not None:
                owner = (row.owner_idp_slug, row.owner_subject)
                # Deprovisioning and deleting the IdP revoke it; this covers a token either
                # raced, and an IdP whose file was removed (refused while the file is gone).
                if not self._owner_stands(session, idp_slug=owner[0], subject=owner[1],
                                          since=row.created_at):
                    if is_deprovisioned(session, idp_slug=owner[0], subject=owner[1]):
                        row.revoked_at = now  # as deprovision() would have
                    return None
            row.last_used_at = now
            return Admin(actor=f"token:{row.name}", owner=owner)

    # --- sessions ----------------------------------------------------------------------------------

    def issue_ticket(self, *, subject: str, name: str, idp_slug: str,
                     email: str | None = None, signed_in_at: float | None = None) -> str:
        """After a verified admin login: a one-time ticket for /admin/callback, which turns it
        into a session cookie on whichever node the browser reaches. ``signed_in_at``: when the
        sign-in began, which its power is judged from (now, if not given): a deactivation or an
        IdP's deletion committed while it was checked then counts as after it."""
        ticket = new_secret()
        now = self.clock.now()
        since = now if signed_in_at is None else min(signed_in_at, now)
        with self.db.transaction() as session:
            # The name is the IdP's (up to 4096 characters an attribute may hold): cut to what
            # the column and an audit actor ("user:<sub> (<name>)", 256) take.
            session.add(AdminSession(id_hash=secret_hash(ticket), kind="ticket", subject=subject,
                                     name=name[:200], email=(email or None) and email[:320],
                                     idp_slug=idp_slug, csrf_token="",
                                     created_at=since, expires_at=now + TICKET_SECONDS))
        return ticket

    def claim_ticket(self, ticket: str) -> str | None:
        """Use a ticket once; return a new session id, or None."""
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(AdminSession, secret_hash(ticket), with_for_update=True)
            if row is None or row.kind != "ticket" or row.expires_at <= now:
                return None
            session.delete(row)
            # Deactivated at the IdP after signing in there, or the IdP gone (or made anew)
            # since the sign-in.
            if not self._owner_stands(session, idp_slug=row.idp_slug, subject=row.subject,
                                      since=row.created_at):
                return None
            session_id = new_secret()
            # created_at: the sign-in's, which the session's power is judged from.
            session.add(AdminSession(id_hash=secret_hash(session_id), kind="session",
                                     subject=row.subject, name=row.name, email=row.email,
                                     idp_slug=row.idp_slug,
                                     csrf_token=secrets.token_urlsafe(24),
                                     created_at=row.created_at,
                                     expires_at=now + SESSION_SECONDS))
            audit.record(session, at=now, event="admin_signed_in", outcome="success",
                         subject=row.subject, idp_slug=row.idp_slug, detail={"name": row.name})
        return session_id

    def authenticate_session(self, session_id: str) -> Admin | None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(AdminSession, secret_hash(session_id))
            if row is None or row.kind != "session" or row.expires_at <= now:
                return None
            if not self._owner_stands(session, idp_slug=row.idp_slug, subject=row.subject,
                                      since=row.created_at):
                # Deprovisioning or the IdP's deletion ends it; this covers a row either raced,
                # and an IdP whose file was removed.
                session.delete(row)
                return None
            return Admin(actor=f"user:{row.subject} ({row.name})", csrf_token=row.csrf_token,
                         name=row.name, email=row.email, owner=(row.idp_slug, row.subject))

    def end_session(self, session_id: str) -> None:
        with self.db.transaction() as session:
            row = session.get(AdminSession, secret_hash(session_id))
            if row is not None:
                session.delete(row)
