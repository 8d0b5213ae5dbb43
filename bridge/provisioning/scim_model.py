"""The SCIM User the bridge stores: RFC 7643's User with the enterprise extension, as
scim2-models defines it, except that an e-mail address is kept as the IdP sent it. The bridge
sends no mail, and a provisioning client whose directory holds an address of a reserved domain
(``user@corp.local``) must still be able to deactivate that person.

``POLICY`` is how far a provisioning client may depart from RFC 7644, within what scim2-models
allows: attributes of schemas we do not declare (an IdP's own extension) are kept as sent rather
than failing the whole user; Entra ID's PATCH habits apply (a ``remove`` whose ``value`` selects
what to remove; an ``add`` or ``replace`` through a filter that matches no entry creates it).

A ``userName`` is compared in two ways (decision 23). Its uniqueness at an IdP goes by
``name_key``, Unicode's NFKC_Casefold (what ``scim_users.user_name_key`` holds), so that no two
spellings Unicode counts as one name (a KELVIN SIGN and a ``K``, fullwidth letters, an invisible
soft hyphen) are two users. A filter, in the database's indexed lookup and in the filters
scim2-models evaluates alike, finds only the same name up to letter case (``case_key``): a
login's ``sub`` is derived from the exact name, so a lookup that answered a look-alike's name
with another person's user would have the IdP link the look-alike to that person, and deprovision
the wrong one. Attributes that are ``caseExact`` (``externalId``, ``id``) are compared exactly."""

from __future__ import annotations

import functools
import re
from typing import Any
from unicodedata import normalize

import scim2_models
from scim2_models import ScimPolicy


class Email(scim2_models.Email):
    value: str | None = None


class User(scim2_models.User[scim2_models.EnterpriseUser]):
    emails: list[Email] | None = None  # type: ignore[assignment]


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 14, as the
# interpreter's unicodedata): characters drawn as nothing, such as SOFT HYPHEN, ZERO WIDTH SPACE,
# the joiners, bidirectional controls, variation selectors and tags.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")


def name_key(value: str) -> str:
    """A ``userName`` as its uniqueness is judged: Unicode's NFKC_Casefold (default-ignorable
    characters removed, NFKC, case-folded, NFKC again). Compatibility look-alikes (KELVIN SIGN,
    fullwidth letters, ligatures), canonically equal spellings (a composed or a decomposed
    accent) and invisible characters make no other name; case is folded fully (``ß`` is
    ``ss``), not merely lowered."""
    return _nfkc_casefold(_IGNORABLE.sub("", value))


def _nfkc_casefold(value: str) -> str:
    return normalize("NFKC", normalize("NFKC", value).casefold())


def stored_keys(value: str) -> set[str]:
    """Every key a user named ``value`` (up to letter case) may hold: ``name_key``, the
    NFKC_Casefold that kept default-ignorable characters (migration 0019), and ``str.lower()``
    (before 0019). A user whose new key another user held at the upgrade keeps its old one."""
    return {name_key(value), _nfkc_casefold(value), value.lower()}


def case_key(value: str) -> str:
    """``value`` with each letter that is merely another case of a lowercase letter put in that
    lowercase: two names are the same name up to letter case when their ``case_key`` is equal.
    A character whose lowercase has another uppercase than itself is kept (KELVIN SIGN, whose
    lowercase ``k`` is the lowercase of ``K``; CAPITAL SHARP S): it is another letter, not
    another case. Nothing is normalised: a composed and a decomposed accent are two spellings,
    as they are two ``sub`` values."""
    return "".join(_case_folded(character) for character in value)


@functools.lru_cache(maxsize=4096)
def _case_folded(character: str) -> str:
    lower = character.lower()
    return lower if lower.upper() == character.upper() else character


def same_name(asked: str, stored: str) -> bool:
    """Whether a filter for the userName ``asked`` finds the user named ``stored``."""
    return case_key(asked) == case_key(stored)


def comparison_key(binding: Any, value: str) -> str:
    """The string filters compare in place of ``value`` (``ScimPolicy.comparison_key``)."""
    return value if binding.case_exact else case_key(value)


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
