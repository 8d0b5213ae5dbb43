"""The neutral pivot: who logged in, as told by an IdP, with no SAML and no JWT in sight."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    # Stable, opaque, unique across IdPs: derived from the IdP entity ID and its subject identifier.
    subject: str
    idp_slug: str
    idp_entity_id: str
    attributes: dict[str, tuple[str, ...]]
    auth_time: int
    # The NameID as sent (a mapping may read it, e.g. Google's e-mail); never the subject itself.
    name_id: str | None = None
    session_index: str | None = None
    session_not_on_or_after: float | None = None
    authn_context_class: str | None = None
    # The NameID's format as sent: what a preview needs to choose the subject as a login does.
    name_id_format: str | None = None
