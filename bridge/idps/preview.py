"""A dry run of a login: what the bridge would make of a SAML response (read, not verified) or of
attributes an admin types in, under the mapping in force and a proposed one. Nothing is issued.

The facts go through the same code as a real login's: the same attribute limits
(``checked_values``) and the same choice of subject (``identity_from_facts``), so a preview refuses
exactly what a login would refuse, with the same code. Used by ``bridge claims preview`` and the
admin API's ``claims-preview``.
"""

from __future__ import annotations

from typing import Any

from bridge.claims.mapping import ClaimMapping
from bridge.claims.preview import preview
from bridge.errors import ConfigError, SamlRejected
from bridge.idps.settings import IdentityProvider
from bridge.saml.assertion_checks import checked_values
from bridge.saml.response import read_unverified
from bridge.saml.subject import SamlFacts, identity_from_facts


def facts_from_response(data: bytes, idp: IdentityProvider, *, max_bytes: int) -> SamlFacts:
    """A Response or Assertion (XML), read without verification; raises SamlRejected."""
    subject = read_unverified(data, max_bytes=max_bytes)
    return SamlFacts(idp_entity_id=idp.metadata.entity_id, name_id=subject.name_id,
                     name_id_format=subject.name_id_format, attributes=subject.attributes)


def facts_from_document(document: dict[str, Any], idp: IdentityProvider) -> SamlFacts:
    """``{"attributes": {name: [values]}, "name_id": "...", "name_id_format": "urn:..."}``.
    Raises ConfigError for a document of the wrong shape, SamlRejected for values a login would
    refuse."""
    raw = document.get("attributes", {})
    if not isinstance(raw, dict):
        raise ConfigError("attributes: an object of name: [values]")
    name_id, name_id_format = document.get("name_id"), document.get("name_id_format")
    if name_id is not None and not isinstance(name_id, str):
        raise ConfigError("name_id: a string")
    if name_id_format is not None and not isinstance(name_id_format, str):
        raise ConfigError("name_id_format: a string (e.g. "
                          "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent)")
    attributes: dict[str, tuple[str, ...]] = {}
    count = 0
    for name, values in raw.items():
        if not name:
            raise SamlRejected("saml_attribute_invalid", "An attribute has no Name.")
        listed = values if isinstance(values, list) else [values]
        attributes[str(name)], count = checked_values(str(name), (str(v) for v in listed), count)
    return SamlFacts(idp_entity_id=idp.metadata.entity_id,
                     name_id=name_id,  # exactly, as a login reads it (text_of)
                     name_id_format=name_id_format, attributes=attributes)


def refused(error: SamlRejected, facts: SamlFacts | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"outcome": "refused", "code": error.code,
                              "reason": error.public_detail, "detail": error.log_detail}
    if facts is not None:
        result["attributes"] = {n: list(v) for n, v in sorted(facts.attributes.items())}
        result["name_id"] = facts.name_id
    return result


def preview_login(facts: SamlFacts, idp: IdentityProvider,
                  proposed: ClaimMapping | None = None) -> dict[str, Any]:
    """``outcome`` "accepted" with the claims of every version (each may still be refused by the
    mapping), or "refused" with the code a login would get."""
    try:
        identity = identity_from_facts(facts, idp)
    except SamlRejected as error:
        return refused(error, facts)
    return {"outcome": "accepted", **preview(identity, idp.settings.mapping, proposed,
                                              idp.settings.authn_contexts)}


def facts_from_test_login(result: dict[str, Any], idp: IdentityProvider) -> SamlFacts:
    """What an accepted test login (``TestLoginCapture``) saw, as the facts of a login now: its
    attributes, NameID and authentication context, from the IdP as its metadata now names it."""
    return SamlFacts(idp_entity_id=idp.metadata.entity_id, name_id=result.get("name_id"),
                     name_id_format=result.get("name_id_format"),
                     attributes={name: tuple(values)
                                 for name, values in (result.get("attributes") or {}).items()},
                     authn_context_class=result.get("authn_context_class"))
