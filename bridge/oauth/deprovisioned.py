"""People an IdP has deprovisioned (a SCIM deactivation or deletion, a security event): their
logins end at once and no new one starts until the IdP reactivates them. The state is in the
database, so every node refuses the next login and answers "inactive" for the ended ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, cast

from sqlalchemy import CursorResult, bindparam, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import BridgeError, Deprovisioned
from bridge.oauth.revocation import end_persons_logins
from bridge.replay import Unless
from bridge.saml.subject import to_identity
from bridge.store import direct
from bridge.store.models import (
    AdminSession,
    AdminToken,
    DeprovisionedSubject,
    LiftedRefusal,
    ProvisioningToken,
    ScimFormerSubject,
    ScimUser,
)

if TYPE_CHECKING:
    from bridge.saml.idp import SamlIdp
    from bridge.saml.verified import VerifiedAssertion
    from bridge.store.db import Database


def deprovision(session: Session, *, idp_slug: str, subject: str, source: str, reason: str,
                now: float, actor: str) -> int:
    """Refuse the person's next logins and end every live one (refresh families, codes not yet
    exchanged, admin sessions and sign-in tickets, admin API tokens they made), in the caller's
    transaction; how many logins ended."""
    # One statement, so two deprovisionings of one person at once (a SCIM request and an
    # event, on two nodes) both succeed instead of one failing on the primary key.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(DeprovisionedSubject)
                    .values(idp_slug=idp_slug, subject=subject, source=source, reason=reason,
                            at=now)
                    .on_conflict_do_update(
                        index_elements=["idp_slug", "subject"],
                        # A refusal an event made stays the event's: only an account-enabled
                        # event lifts it, whatever SCIM says after.
                        set_={"source": case((DeprovisionedSubject.source == "event", "event"),
                                             else_=source),
                              "reason": reason}))
    ended = end_persons_logins(session, idp_slug=idp_slug, subject=subject, now=now,
                               reason=reason)
    # A deactivated admin must not keep the pages (and with them a SCIM token to undo this).
    admin = cast("CursorResult[Any]", session.execute(delete(AdminSession).where(
        AdminSession.idp_slug == idp_slug, AdminSession.subject == subject)))
    # Nor the admin API tokens made with that power: they are the same power.
    tokens = cast("CursorResult[Any]", session.execute(update(AdminToken).where(
        AdminToken.owner_idp_slug == idp_slug, AdminToken.owner_subject == subject,
        AdminToken.revoked_at.is_(None)).values(revoked_at=now)))
    # And the SCIM tokens they issued: kept, one would let them reactivate themselves. The
    # IdP's provisioning then needs a token another admin issues (a departed admin's
    # credentials are rotated).
    scim_tokens = list(session.scalars(select(ProvisioningToken.id).where(
        ProvisioningToken.owner_idp_slug == idp_slug, ProvisioningToken.owner_subject == subject,
        ProvisioningToken.revoked_at.is_(None))))
    if scim_tokens:
        session.execute(update(ProvisioningToken).where(ProvisioningToken.id.in_(scim_tokens))
                        .values(revoked_at=now))
    audit.record(session, at=now, event="deprovision", outcome="success", idp_slug=idp_slug,
                 subject=subject, detail={"actor": actor, "reason": reason, "families": ended,
                                          "admin_sessions": admin.rowcount,
                                          "admin_tokens": tokens.rowcount,
                                          "scim_tokens": scim_tokens})
    return ended


def reinstate(session: Session, *, idp_slug: str, subject: str, now: float, actor: str,
              source: str = "scim") -> bool:
    """Let the person log in again (the IdP reactivated them); whether the refusal was lifted.
    ``source``: what reactivates them, "scim" or "event"; a refusal an event made is lifted by
    an event only (a SCIM client cannot undo what the IdP's security events said). What
    the refusal ended stays ended: logins are revoked (one that escaped the deprovisioning is
    now), and an access token of no login issued before the refusal was lifted stays inactive
    (``ended_by_a_lifted_refusal``)."""
    refusal = session.get(DeprovisionedSubject, (idp_slug, subject), with_for_update=True)
    if refusal is None or (refusal.source == "event" and source != "event"):
        return False
    refused_at, reason = refusal.at, refusal.reason
    session.delete(refusal)
    # While a refusal holds, the person can have no live login but one that escaped the
    # deprovisioning (it completed as the deprovisioning ran, and is refused since: codes.py,
    # tokens/refresh.py). Lifting the refusal must not bring it back.
    escaped = end_persons_logins(session, idp_slug=idp_slug, subject=subject, now=now,
                                 reason=reason)
    # The last refusal is the one that counts: every earlier one began before it.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(LiftedRefusal)
                    .values(idp_slug=idp_slug, subject=subject, refused_at=refused_at,
                            lifted_at=now)
                    .on_conflict_do_update(index_elements=["idp_slug", "subject"],
                                           set_={"refused_at": refused_at, "lifted_at": now}))
    audit.record(session, at=now, event="reinstate", outcome="success", idp_slug=idp_slug,
                 subject=subject, detail={"actor": actor, "families": escaped})
    return True


# Read on every login, through the driver (store/direct.py): inside the statement that completes
# the login (``unless_deprovisioned``), or by itself.
IS_DEPROVISIONED = select(DeprovisionedSubject.reason).where(
    DeprovisionedSubject.idp_slug == bindparam("person_idp"),
    DeprovisionedSubject.subject == bindparam("person_subject"))


def _person(idp_slug: str, subject: str) -> dict[str, str]:
    return {"person_idp": idp_slug, "person_subject": subject}


def unless_deprovisioned(idp_slug: str, subject: str) -> Unless:
    """What refuses a login's completion (``replay.consume``) for a person the IdP deprovisioned;
    it then returns the reason, for ``refuse_deprovisioned``."""
    return Unless(IS_DEPROVISIONED, _person(idp_slug, subject))


def refuse_if_deprovisioned(connection: direct.Runner, *, idp_slug: str, subject: str) -> None:
    """Raise ``Deprovisioned`` if the IdP has deprovisioned this person."""
    found = direct.first(connection, IS_DEPROVISIONED, _person(idp_slug, subject))
    if found is not None:
        refuse_deprovisioned(idp_slug, found.reason)


def refuse_if_person_deprovisioned(db: Database, refused: VerifiedAssertion,
                                   idp: SamlIdp) -> None:
    """Before the refusal of an assertion verified in every other way (an AuthnInstant no login
    can have): raise ``Deprovisioned`` if its person is deprovisioned, who is refused as such
    whatever else is wrong with the login. An assertion that names no person (its subject
    attribute missing) leaves the refusal at hand."""
    try:
        subject = to_identity(refused, idp).subject
    except BridgeError:
        return
    with db.lookup() as connection:
        refuse_if_deprovisioned(connection, idp_slug=idp.slug, subject=subject)


def refuse_deprovisioned(idp_slug: str, reason: str) -> NoReturn:
    raise Deprovisioned("login_deprovisioned",
                        "Your account has been deactivated at your identity provider.",
                        log_detail={"idp": idp_slug, "reason": reason})


def ended_by_a_lifted_refusal(session: Session, *, idp_slug: str, subject: str,
                               issued_at: float) -> bool:
    """Whether a token of no login issued at ``issued_at`` (to the millisecond, or whole seconds
    for a token issued before its jti said: ``tokens/access.py``) was ended by a refusal since
    lifted: one that began after it was issued, or held when it was. A token issued while a
    refusal held is one whose grant raced the deprovisioning (it checked the person before the
    refusal committed, which may be after the refusal's own time): it stays ended too."""
    lifted = session.get(LiftedRefusal, (idp_slug, subject))
    return lifted is not None and issued_at <= lifted.lifted_at


def made_before_a_lifted_refusal_ended(session: Session, *, idp_slug: str, subject: str,
                                       made_at: float) -> bool:
    """Whether an admin's session or token made at ``made_at`` was made before their last
    lifted refusal ended: made before it began, the refusal ended it; made while it held (a
    request racing the deprovisioning), it was never theirs to have."""
    lifted = session.get(LiftedRefusal, (idp_slug, subject))
    return lifted is not None and made_at <= lifted.lifted_at


def is_deprovisioned(session: Session, *, idp_slug: str, subject: str) -> bool:
    """Whether the IdP has deprovisioned this person (in an ORM transaction)."""
    return session.get(DeprovisionedSubject, (idp_slug, subject)) is not None


def forget_provisioning(session: Session, *, idp_slug: str, now: float) -> None:
    """An IdP deleted: its SCIM token ends and its SCIM users go, so that an IdP made later under
    the same slug inherits none of them (its logins are ended by the caller). Its refusals stay,
    as ``forget_scim`` says: restored, or made again, the same IdP keeps refusing its
    deprovisioned people, and another IdP under the slug has none of them."""
    forget_scim(session, idp_slug=idp_slug, now=now)


def forget_scim(session: Session, *, idp_slug: str, now: float) -> int:
    """An IdP created under a slug: a SCIM token and SCIM users an earlier IdP of that slug left
    (a file removed from idp_metadata/ leaves them) end, so that its SCIM client can neither
    read nor change what the new IdP's people are. Refusals stay: they name people by a ``sub``
    derived from the entity ID, so they keep refusing the people of the same IdP made again
    and can name nobody at another. How many SCIM users went."""
    session.execute(update(ProvisioningToken).where(
        ProvisioningToken.idp_slug == idp_slug, ProvisioningToken.revoked_at.is_(None))
        .values(revoked_at=now))
    session.execute(delete(ScimFormerSubject).where(ScimFormerSubject.idp_slug == idp_slug))
    users = cast("CursorResult[Any]", session.execute(
        delete(ScimUser).where(ScimUser.idp_slug == idp_slug)))
    return int(users.rowcount or 0)
