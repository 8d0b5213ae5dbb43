"""Checks shared by everything that reads an assertion (logins, the SAML bearer grant): time
windows, audience, attributes, and reading text whole."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.ns import q

_MAX_ATTRIBUTE_VALUES = 2000
_MAX_VALUE_LENGTH = 4096
# The longest message ID the replay cache stores (consumed_assertions.assertion_id). Longer ones
# are refused as malformed before anything else, so that no backend truncates or fails on them.
MAX_ID_LENGTH = 256


def check_id_length(element: etree._Element, what: str) -> None:
    identifier = element.get("ID") or ""
    if len(identifier) > MAX_ID_LENGTH:
        raise SamlRejected("saml_malformed", f"The {what} ID is longer than {MAX_ID_LENGTH} "
                           "characters.", log_detail={"length": len(identifier)})


def check_window(element: etree._Element, now: float, skew: float, *, what: str) -> None:
    not_before = element.get("NotBefore")
    if not_before and saml_time(not_before, "NotBefore") > now + skew:
        raise SamlRejected("saml_not_yet_valid", f"The {what} is not valid yet.",
                           log_detail={"not_before": not_before,
                                       "seconds_early": round(saml_time(not_before, "") - now),
                                       "skew_seconds": skew})
    not_on_or_after = element.get("NotOnOrAfter")
    if not_on_or_after and saml_time(not_on_or_after, "NotOnOrAfter") <= now - skew:
        raise SamlRejected("saml_expired", f"The {what} has expired.",
                           log_detail={"not_on_or_after": not_on_or_after,
                                       "seconds_late": round(now - saml_time(not_on_or_after, "")),
                                       "skew_seconds": skew})


def check_audience(conditions: etree._Element, *accepted: str) -> None:
    """SAML Core §2.5.1.4: each AudienceRestriction must name us (one of ``accepted``), and at
    least one must exist: an assertion without one would be valid for any relying party."""
    restrictions = conditions.findall(q(ns.SAML, "AudienceRestriction"))
    audiences = [[text_of(a) for a in r.findall(q(ns.SAML, "Audience"))] for r in restrictions]
    if not restrictions or any(not set(accepted) & set(group) for group in audiences):
        raise SamlRejected("saml_audience_mismatch", "The assertion is meant for another SP.",
                           log_detail={"got": audiences, "expected": list(accepted)})


def attributes_of(assertion: etree._Element) -> dict[str, tuple[str, ...]]:
    attributes: dict[str, tuple[str, ...]] = {}
    count = 0
    for statement in assertion.findall(q(ns.SAML, "AttributeStatement")):
        if statement.find(q(ns.SAML, "EncryptedAttribute")) is not None:
            raise SamlRejected("saml_attribute_invalid", "Encrypted attributes are not supported.")
        for attribute in statement.findall(q(ns.SAML, "Attribute")):
            name = attribute.get("Name")
            if not name:
                raise SamlRejected("saml_attribute_invalid", "An attribute has no Name.")
            if name in attributes:
                raise SamlRejected("saml_attribute_duplicate",
                                   "An attribute appears twice.", log_detail={"name": name})
            values = []
            for value_el in attribute.findall(q(ns.SAML, "AttributeValue")):
                if value_el.get(q(ns.XSI, "nil")) in ("true", "1"):
                    continue
                nested = value_el.find(q(ns.SAML, "NameID"))
                values.append(text_of(nested if nested is not None else value_el))
            attributes[name], count = checked_values(name, values, count)
    return attributes


def checked_values(name: str, values: Iterable[str], count: int) -> tuple[tuple[str, ...], int]:
    """The limits every attribute value meets, whether read from an assertion or given to a
    preview: at most 4096 characters each and 2000 in all (``count`` so far); empty and blank ones
    dropped, the others kept exactly (see ``text_of``). Returns the values and the new count."""
    kept = []
    for value in values:
        if len(value) > _MAX_VALUE_LENGTH:
            raise SamlRejected("saml_attribute_invalid", "An attribute value is too long.",
                               log_detail={"name": name, "length": len(value)})
        if value.strip():
            kept.append(value)
    count += len(kept)
    if count > _MAX_ATTRIBUTE_VALUES:
        raise SamlRejected("saml_attribute_invalid", "Too many attribute values.")
    return tuple(kept), count


def one_child(parent: etree._Element, tag: str, code: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise SamlRejected(code, f"The assertion must contain exactly one {what}.",
                           log_detail={"found": len(found)})
    return found[0]


def text_of(element: etree._Element) -> str:
    """The element's text exactly as signed.

    Comments and PIs were refused at parse time, so the text is whole. A value with child
    elements has text in several places (``a<x/>b``): refuse it rather than pick a part. Nothing
    is trimmed: " ceo" and "ceo" are different NameIDs, " bridge-admins" is not "bridge-admins"
    (xs:string keeps whitespace), and an IdP that lets users name themselves or their groups must
    not be able to hand out look-alikes that we would fold into the real ones.
    """
    if len(element):
        raise SamlRejected("saml_attribute_invalid", "A value holds markup instead of text.",
                           log_detail={"element": str(element.tag)})
    return element.text or ""


def saml_time(value: str | None, what: str) -> float:
    if not value:
        raise SamlRejected("saml_malformed", f"{what} is missing.")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise SamlRejected("saml_malformed", f"{what} is not an xs:dateTime.",
                           log_detail={"value": value[:64]}) from None
    if parsed.tzinfo is None:
        # SAML Core §1.3.3: times are UTC; a missing zone means UTC.
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
