"""Whether a login (a refresh family) is still live: not logged out, revoked, expired or idle.
A valid token signature is not enough for introspection, userinfo or token exchange."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from bridge.oauth.deprovisioned import ended_by_a_lifted_refusal, is_deprovisioned
from bridge.store.models import AuditEvent, IdpRecord, RefreshFamily
from bridge.tokens.access import THROUGH_API, THROUGH_FILE, IssueTime, issued_at, login_of
from bridge.tokens.refresh import FAMILY_PERSON_DEPROVISIONED

if TYPE_CHECKING:
    from bridge.services import Services


def live_login_query(services: Services) -> Select[RefreshFamily]:
    """Refresh families that are still a live login: not revoked (logout, IdP logout, /revoke,
    `bridge revoke`, reuse), not past their absolute end, and of a person their IdP has not
    deprovisioned (a deprovisioning revokes their families, but one started by a login that
    completed while it ran can escape it: oauth/deprovisioned.py)."""
    return select(RefreshFamily).where(
        RefreshFamily.revoked_at.is_(None), RefreshFamily.expires_at > services.clock.now(),
        ~FAMILY_PERSON_DEPROVISIONED)


def login_live(services: Services, login: str) -> bool:
    with services.db.transaction() as session:
        family = session.scalars(
            live_login_query(services).where(RefreshFamily.id == login)).first()
        return family is not None and not idle(services, family)


def idle(services: Services, family: RefreshFamily) -> bool:
    # The client's idle timeout ends a login as surely as a logout (RFC 9700 §4.14.2).
    client = services.clients.client(family.client_id)
    timeout = client.refresh_idle_timeout_seconds if client is not None else 0
    last = family.last_used_at or family.created_at
    return bool(timeout) and services.clock.now() - last > timeout


def access_token_live(services: Services, claims: dict[str, Any]) -> bool:
    """Whether a verified access token still stands: the login it was issued under is live, or,
    for a token of no login (the SAML bearer grant, or exchanged from one), its IdP still vouches
    for it and has not deprovisioned its person since (ending a login is how a deprovisioning or
    an IdP's deletion reaches the others)."""
    login = login_of(claims.get("jti"))
    if login is not None:
        return login_live(services, login)
    slug = str(claims.get("idp", ""))
    issued = issued_at(claims)
    if issued is None:
        return False
    with services.db.transaction() as session:
        if not _idp_vouches(services, session, slug, issued):
            return False
        subject = str(claims.get("sub", ""))
        if is_deprovisioned(session, idp_slug=slug, subject=subject):
            return False
        # A refusal lifted since: what it ended stays ended (the IdP reactivated the person, it
        # did not vouch again for a token issued before).
        return not ended_by_a_lifted_refusal(session, idp_slug=slug, subject=subject,
                                             issued_at=issued.instant)


def _idp_vouches(services: Services, session: Any, slug: str, issued: IssueTime) -> bool:
    """Whether the IdP a token of no login came through is still live, and is the one it came
    through: an IdP of the admin API deleted and restored (or made again under the slug) is
    created anew, and a token issued before that ended with the deletion, as its logins did.
    Read from the database, so a deletion on any node ends the token on every node at once."""
    # Each kind of IdP vouches only for the tokens issued through its kind (tokens/access.py:
    # new_jti): a file put under the slug of a deleted IdP of the admin API, or such an IdP made
    # under a file's former slug, is not the IdP a token came through.
    files = services.idps.files
    if slug in files:  # declared in idp_metadata/ on this node: in force while it is there
        if not files[slug].live or issued.through == THROUGH_API:
            return False
        # For what was issued since an IdP of the admin API last held the slug: one could only
        # while no file was there, so the file put back may not be the IdP it was.
        return not _deleted_since(session, slug, issued)
    if issued.through == THROUGH_FILE:
        return False
    record = session.get(IdpRecord, slug)
    if record is None or record.state != "live":
        return False
    if not issued.precise:
        # Whole seconds (a token issued before jti named the instant): one issued in the
        # second the IdP was created stands.
        return issued.instant >= int(record.created_at)
    return issued.instant >= record.created_at


def _deleted_since(session: Any, slug: str, issued: IssueTime) -> bool:
    """Whether an IdP of the admin API under ``slug`` was deleted at or after ``issued``; to the
    whole second of a token issued before jti named the instant (a deletion in its second ends
    it: doubt refuses)."""
    since = float(int(issued.instant)) if not issued.precise else issued.instant
    return session.scalar(
        select(AuditEvent.id).where(AuditEvent.idp_slug == slug, AuditEvent.event == "idp_deleted",
                                    AuditEvent.at >= since).limit(1)) is not None
