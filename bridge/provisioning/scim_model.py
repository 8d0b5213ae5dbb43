"""The SCIM User the bridge stores: RFC 7643's User with the enterprise extension, as
scim2-models defines it, except that an e-mail address is kept as the IdP sent it. The bridge
sends no mail, and a provisioning client whose directory holds an address of a reserved domain
(``user@corp.local``) must still be able to deactivate that person.

``POLICY`` is how far a provisioning client may depart from RFC 7644, within what scim2-models
allows: attributes of schemas we do not declare (an IdP's own extension) are kept as sent rather
than failing the whole user; Entra ID's PATCH habits apply (a ``remove`` whose ``value`` selects
what to remove; an ``add`` or ``replace`` through a filter that matches no entry creates it).

Strings are compared through ``comparison_key``, in the filters scim2-models evaluates and in the
database alike (``name_key`` is what ``scim_users.user_name_key`` holds): an attribute that is
``caseExact`` (``externalId``, ``id``) exactly as sent, any other (``userName``) in Unicode's
NFKC_Casefold form (decision 23), so that no two spellings that Unicode counts as the same name
are two users, and a lookup finds the user whose name the database would call a duplicate."""

from __future__ import annotations

from typing import Any
from unicodedata import normalize

import scim2_models
from scim2_models import ScimPolicy


class Email(scim2_models.Email):
    value: str | None = None


class User(scim2_models.User[scim2_models.EnterpriseUser]):
    emails: list[Email] | None = None  # type: ignore[assignment]


def name_key(value: str) -> str:
    """A ``userName`` as it is compared: NFKC, case-folded, NFKC again (Unicode's
    NFKC_Casefold). Compatibility look-alikes (KELVIN SIGN, fullwidth letters, ligatures) and
    canonically equal spellings (a composed or a decomposed accent) are the name they look like;
    case is folded fully (``ß`` is ``ss``), not merely lowered."""
    return normalize("NFKC", normalize("NFKC", value).casefold())


def comparison_key(binding: Any, value: str) -> str:
    """The string filters compare in place of ``value`` (``ScimPolicy.comparison_key``)."""
    return value if binding.case_exact else name_key(value)


POLICY = ScimPolicy(unknown=ScimPolicy.Unknown.keep,
                    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
                    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
                    comparison_key=comparison_key)
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
