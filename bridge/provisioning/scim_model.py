"""The SCIM User the bridge stores: RFC 7643's User with the enterprise extension, as
scim2-models defines it, except that an e-mail address is kept as the IdP sent it. The bridge
sends no mail, and a provisioning client whose directory holds an address of a reserved domain
(``user@corp.local``) must still be able to deactivate that person.

``POLICY`` is how far a provisioning client may depart from RFC 7644, within what scim2-models
allows: attributes of schemas we do not declare (an IdP's own extension) are kept as sent rather
than failing the whole user; Entra ID's PATCH habits apply (a ``remove`` whose ``value`` selects
what to remove; an ``add`` or ``replace`` through a filter that matches no entry creates it)."""

from __future__ import annotations

import scim2_models
from scim2_models import ScimPolicy


class Email(scim2_models.Email):
    value: str | None = None


class User(scim2_models.User[scim2_models.EnterpriseUser]):
    emails: list[Email] | None = None  # type: ignore[assignment]


POLICY = ScimPolicy(unknown=ScimPolicy.Unknown.keep,
                    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
                    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create)
ENTERPRISE_MANAGER = f"{scim2_models.EnterpriseUser.__schema__}:manager".lower()


def entra_manager(operations: object) -> object:
    """Entra ID sets the enterprise ``manager`` to the manager's id as a plain string, where
    RFC 7643 §4.3 has an object: ``{"value": id}``."""
    if not isinstance(operations, list):
        return operations
    return [{**op, "value": {"value": op["value"]}}
            if isinstance(op, dict) and isinstance(op.get("value"), str)
            and str(op.get("path", "")).lower() == ENTERPRISE_MANAGER else op
            for op in operations]
