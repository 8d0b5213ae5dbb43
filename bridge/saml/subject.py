"""From SAML facts to a protocol-neutral ``Identity``, choosing a stable subject.

``identity_from_facts`` is the one place that decides who a person is: a real login passes the
facts of its verified assertion (``to_identity``), a claims preview passes the facts an admin gave
(``bridge.idps.preview``), so a preview refuses exactly what a login refuses, with the same code.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.errors import SamlRejected
from bridge.identity import Identity
from bridge.saml import ns
from bridge.saml.idp import SamlIdp
from bridge.saml.verified import VerifiedAssertion


@dataclass(frozen=True)
class SamlFacts:
    """What an assertion says about a person, before a subject is chosen."""

    idp_entity_id: str
    name_id: str | None
    name_id_format: str | None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    auth_time: int = 0
    session_index: str | None = None
    session_not_on_or_after: float | None = None
    authn_context_class: str | None = None


def derive_subject(idp_entity_id: str, subject_id: str) -> str:
    """Opaque ``sub``: never an e-mail, and two IdPs can never produce the same value."""
    digest = hashlib.sha256(f"{idp_entity_id}\x00{subject_id}".encode()).digest()
    return base64.b32encode(digest[:20]).decode("ascii").lower()


def identity_from_facts(facts: SamlFacts, idp: SamlIdp) -> Identity:
    if not facts.name_id or not facts.name_id.strip():
        # SAML Core §2.4.1: the Subject names the person. (A login's response checks refuse this
        # first; a preview's facts arrive here unchecked.)
        raise SamlRejected("saml_subject_missing", "The assertion has no usable NameID.",
                           log_detail={"idp": idp.slug})
    attribute = idp.settings.subject_attribute
    if attribute:
        values = facts.attributes.get(attribute, ())
        if len(values) != 1:
            raise SamlRejected(
                "saml_subject_missing",
                "The attribute configured as the subject is missing or has several values.",
                log_detail={"subject_attribute": attribute, "values": len(values),
                            "arrived": sorted(facts.attributes)},
            )
        subject_id = values[0]
    elif facts.name_id_format == ns.NAMEID_TRANSIENT:
        # A transient NameID changes at every login: a `sub` built on it would make every login a
        # new user.
        raise SamlRejected(
            "saml_subject_transient",
            "The IdP sent a transient NameID; configure a persistent NameID at the IdP or set "
            "subject_attribute in this IdP's settings.",
            log_detail={"idp": idp.slug, "arrived": sorted(facts.attributes)},
        )
    else:
        subject_id = facts.name_id
    return Identity(
        subject=derive_subject(facts.idp_entity_id, subject_id),
        idp_slug=idp.slug,
        idp_entity_id=facts.idp_entity_id,
        attributes=dict(facts.attributes),
        auth_time=facts.auth_time,
        name_id=facts.name_id,
        session_index=facts.session_index,
        session_not_on_or_after=facts.session_not_on_or_after,
        authn_context_class=facts.authn_context_class,
        name_id_format=facts.name_id_format,
    )


def to_identity(verified: VerifiedAssertion, idp: SamlIdp) -> Identity:
    return identity_from_facts(SamlFacts(
        idp_entity_id=verified.idp_entity_id,
        name_id=verified.name_id,
        name_id_format=verified.name_id_format,
        attributes=verified.attributes,
        auth_time=int(verified.authn_instant),
        session_index=verified.session_index,
        session_not_on_or_after=verified.session_not_on_or_after,
        authn_context_class=verified.authn_context_class,
    ), idp)
