"""The people a SCIM user stands for: the ``sub`` it names now, and the ones it named before a
rename (``scim_former_subjects``). A deactivation or deletion reaches all of them; a refusal is
lifted only while no inactive user of the IdP stands, or stood, for the person (decision 23).

No scim2-models here: security events ask the same question."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge.store.models import ScimFormerSubject, ScimUser


def remember_rename(session: Session, *, idp_slug: str, user_id: str, before: str | None,
                    after: str | None) -> None:
    """Record that the user ``user_id`` now stands for ``after`` where it stood for ``before``.
    ``before`` stays one of its people; ``after`` is its own from now on, so another active user
    that stood for it before lets go of it (the IdP gave the name to this one). An inactive one
    keeps it: it named the person and is inactive, so it still holds their refusal (and its
    deletion still reaches them)."""
    if before == after:
        return
    if after:
        active_users = select(ScimUser.id).where(ScimUser.idp_slug == idp_slug,
                                                 ScimUser.active.is_(True))
        session.execute(delete(ScimFormerSubject).where(
            ScimFormerSubject.idp_slug == idp_slug, ScimFormerSubject.subject == after,
            (ScimFormerSubject.user_id == user_id)
            | ScimFormerSubject.user_id.in_(active_users)))
    if before and session.get(ScimFormerSubject, (user_id, before)) is None:
        session.add(ScimFormerSubject(user_id=user_id, subject=before, idp_slug=idp_slug))
    session.flush()


def subjects_of(session: Session, user: ScimUser) -> list[str]:
    """Every ``sub`` the user stands or stood for, the current one first."""
    former = session.scalars(select(ScimFormerSubject.subject).where(
        ScimFormerSubject.user_id == user.id).order_by(ScimFormerSubject.subject))
    return list(dict.fromkeys([*([user.subject] if user.subject else []), *former]))


def forget_user(session: Session, user_id: str) -> None:
    session.execute(delete(ScimFormerSubject).where(ScimFormerSubject.user_id == user_id))


def inactive_user_for(session: Session, *, idp_slug: str, subject: str,
                      other_than: str | None = None) -> bool:
    """Whether a user of the IdP (other than ``other_than``) that stands or stood for the person
    is inactive: while one is, nothing but that user's reactivation lifts the refusal."""
    inactive = [ScimUser.idp_slug == idp_slug, ScimUser.active.is_(False)]
    if other_than is not None:
        inactive.append(ScimUser.id != other_than)
    stands = select(ScimUser.id).where(ScimUser.subject == subject, *inactive)
    stood = (select(ScimUser.id).join(ScimFormerSubject, ScimFormerSubject.user_id == ScimUser.id)
             .where(ScimFormerSubject.idp_slug == idp_slug, ScimFormerSubject.subject == subject,
                    *inactive))
    return any(session.scalar(query.limit(1)) is not None for query in (stands, stood))
