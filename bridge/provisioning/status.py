"""What an IdP's admin page and ``GET /admin/api/idps/<slug>/deprovisioning`` show about
deprovisioning: where the IdP sends SCIM requests and security events, how a SCIM user is matched
to a login, the SCIM token in force (never its value) and how many people are refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from bridge.errors import NotFound
from bridge.provisioning.matching import matching_rule
from bridge.provisioning.tokens import ProvisioningTokens
from bridge.store.models import DeprovisionedSubject, ScimUser

if TYPE_CHECKING:
    from bridge.services import Services


def deprovisioning_status(services: Services, tokens: ProvisioningTokens,
                          slug: str) -> dict[str, Any]:
    idp = services.idps.get(slug)
    if idp is None:
        raise NotFound("idp_unknown", "No IdP is configured under this slug.")
    base = services.settings.base_url
    with services.db.transaction() as session:
        users = {bool(active): int(count) for active, count in session.execute(
            select(ScimUser.active, func.count()).where(ScimUser.idp_slug == slug)
            .group_by(ScimUser.active))}
        refused = session.scalar(select(func.count()).select_from(DeprovisionedSubject)
                                 .where(DeprovisionedSubject.idp_slug == slug))
    events = idp.settings.security_events
    return {
        "scim_base_url": f"{base}/scim/v2/{slug}",
        "scim_user_key": idp.settings.scim_user_key,
        "matching_rule": matching_rule(idp),
        "scim_token": tokens.status(slug),
        "scim_users": {"active": users.get(True, 0), "inactive": users.get(False, 0)},
        "refused_people": refused or 0,
        "security_events": None if events is None else {
            "receiver_url": f"{base}/events/{slug}", "issuer": events.issuer,
            "audience": events.audience or f"{base}/events/{slug}",
            "keys": events.jwks_url or "keys in the settings",
            "algorithms": list(events.algorithms)},
    }
