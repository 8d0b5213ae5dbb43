"""Us, as a SAML service provider: the entity ID and the ACS URL an IdP answers to."""

from __future__ import annotations

from bridge.config import Settings
from bridge.saml import response as saml_response


def service_provider(settings: Settings, slug: str) -> saml_response.ServiceProvider:
    """Us, as the SP that IdP ``slug`` answers."""
    return saml_response.ServiceProvider(entity_id=settings.sp_entity_id,
                                         acs_url=settings.acs_url(slug))
