"""The SCIM User the bridge stores: RFC 7643's User with the enterprise extension, as
scim2-models defines it, except that an e-mail address is kept as the IdP sent it. The bridge
sends no mail, and a provisioning client whose directory holds an address of a reserved domain
(``user@corp.local``) must still be able to deactivate that person."""

from __future__ import annotations

import scim2_models


class Email(scim2_models.Email):
    value: str | None = None


class User(scim2_models.User[scim2_models.EnterpriseUser]):
    emails: list[Email] | None = None  # type: ignore[assignment]
