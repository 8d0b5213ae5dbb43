"""From a verified assertion to a protocol-neutral ``Identity``, choosing a stable subject."""

from __future__ import annotations

import base64
import hashlib

from bridge.errors import SamlRejected
from bridge.identity import Identity
from bridge.saml import ns
from bridge.saml.idp import IdentityProvider
from bridge.saml.response import VerifiedAssertion


def derive_subject(idp_entity_id: str, subject_id: str) -> str:
    """Opaque ``sub``: never an e-mail, and two IdPs can never produce the same value."""
    digest = hashlib.sha256(f"{idp_entity_id}\x00{subject_id}".encode()).digest()
    return base64.b32encode(digest[:20]).decode("ascii").lower()


def to_identity(verified: VerifiedAssertion, idp: IdentityProvider) -> Identity:
    attribute = idp.settings.subject_attribute
    if attribute:
        values = verified.attributes.get(attribute, ())
        if len(values) != 1:
            raise SamlRejected(
                "saml_subject_missing",
                "The attribute configured as the subject is missing or has several values.",
                log_detail={"subject_attribute": attribute, "values": len(values),
                            "arrived": sorted(verified.attributes)},
            )
        subject_id = values[0]
    elif verified.name_id_format == ns.NAMEID_TRANSIENT:
        # A transient NameID changes at every login: a `sub` built on it would make every login a
        # new user.
        raise SamlRejected(
            "saml_subject_transient",
            "The IdP sent a transient NameID; configure a persistent NameID at the IdP or set "
            "subject_attribute in this IdP's settings.",
            log_detail={"idp": idp.slug, "arrived": sorted(verified.attributes)},
        )
    else:
        subject_id = verified.name_id
    return Identity(
        subject=derive_subject(verified.idp_entity_id, subject_id),
        idp_slug=idp.slug,
        idp_entity_id=verified.idp_entity_id,
        attributes=dict(verified.attributes),
        auth_time=int(verified.authn_instant),
        name_id=verified.name_id,
        session_index=verified.session_index,
        session_not_on_or_after=verified.session_not_on_or_after,
        authn_context_class=verified.authn_context_class,
    )
