"""Which SCIM user is which login: the IdP's ``scim_user_key`` attribute (``userName`` or
``externalId``) holds the value a login takes as the subject (the NameID, or the
``subject_attribute``), so the SCIM user's ``sub`` is derived exactly as a login's is."""

from __future__ import annotations

from bridge.idps.settings import IdentityProvider
from bridge.saml.subject import derive_subject


def subject_of(idp: IdentityProvider, user_name: str, external_id: str | None) -> str | None:
    """The ``sub`` of the person a SCIM user stands for; None when the key attribute is empty."""
    value = user_name if idp.settings.scim_user_key == "userName" else external_id
    if not value:
        return None
    return derive_subject(idp.metadata.entity_id, value)


def matching_rule(idp: IdentityProvider) -> str:
    """The rule in words, for the IdP's admin page."""
    source = (f"the value of its attribute {idp.settings.subject_attribute}"
              if idp.settings.subject_attribute else "its NameID")
    return (f"A SCIM user is the person whose login at {idp.display_name} carries, as "
            f"{source}, the SCIM user's {idp.settings.scim_user_key} (compared exactly). "
            "Set scim_user_key in the IdP's settings to use the other of userName, externalId.")
