"""The SAML 2.0 bearer assertion grant (RFC 7522): a server-side client presents an assertion it
received and gets tokens. Every check of our own ACS pipeline applies (hardened parse, shape and
algorithm allow-lists before cryptography, signature by the issuing IdP's metadata keys only,
audience, time windows, replay via the same cache, values read only from the verified element),
with the token endpoint in the place of the ACS (RFC 7522 §3).

python3-saml's second opinion (decision 0001) does not run here: it validates Responses posted to
an ACS, and a bearer assertion is a bare Assertion with no Response, Destination or request to
answer. What makes up for it: only confidential clients that are explicitly allowed
(``allow_saml_bearer``) reach this code, after authenticating, and they get an access token only,
never a refresh token."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from bridge.clock import Clock
from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.assertion_checks import (
    attributes_of,
    check_audience,
    check_window,
    one_child,
    saml_time,
    text_of,
)
from bridge.saml.idp import SamlIdp
from bridge.saml.ns import q
from bridge.saml.signature_policy import check_assertion_shape
from bridge.saml.verified import VerifiedAssertion, authn_facts, verified_assertion
from bridge.saml.verify import verify_signature
from bridge.saml.xml_parser import parse_untrusted

MAX_ASSERTION_BYTES = 256 * 1024


def verify_bearer_assertion(encoded: str, *, idps: Mapping[str, SamlIdp], sp_entity_id: str,
                            token_url: str, clock: Clock) -> VerifiedAssertion:
    try:
        # RFC 7522 §2.1: base64url without padding (tolerate padding).
        data = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise SamlRejected("saml_malformed", "assertion is not base64url.") from None
    root = parse_untrusted(data, max_bytes=MAX_ASSERTION_BYTES)
    issuer = root.find(q(ns.SAML, "Issuer"))
    claimed = text_of(issuer) if issuer is not None else ""
    # The Issuer only chooses whose keys to try; the signature then proves it.
    idp = next((i for i in idps.values() if i.metadata.entity_id == claimed), None)
    if idp is None:
        raise SamlRejected("saml_issuer_mismatch", "The assertion comes from no configured IdP.",
                           log_detail={"issuer": claimed[:200]})
    now = clock.now()
    signature, uses_sha1 = check_assertion_shape(root, allow_sha1=idp.settings.allows_sha1(now))
    verify_signature(signature, root, idp.keys, uses_sha1=uses_sha1)
    skew = idp.settings.clock_skew_seconds

    conditions = one_child(root, q(ns.SAML, "Conditions"), "saml_malformed", "Conditions")
    check_window(conditions, now, skew, what="assertion")
    # RFC 7522 §3: the audience identifies the authorization server (its entity ID or token URL).
    check_audience(conditions, sp_entity_id, token_url)

    subject = one_child(root, q(ns.SAML, "Subject"), "saml_subject_missing", "Subject")
    name_id = subject.find(q(ns.SAML, "NameID"))
    if name_id is None or not text_of(name_id).strip():
        raise SamlRejected("saml_subject_missing", "The assertion has no usable NameID.")
    expiry = None
    for confirmation in subject.findall(q(ns.SAML, "SubjectConfirmation")):
        data_el = confirmation.find(q(ns.SAML, "SubjectConfirmationData"))
        if confirmation.get("Method") != ns.CM_BEARER or data_el is None:
            continue
        if data_el.get("Recipient") != token_url:
            raise SamlRejected("saml_recipient_mismatch", "The assertion is meant for another "
                               "endpoint.", log_detail={"got": data_el.get("Recipient"),
                                                        "expected": token_url})
        if not data_el.get("NotOnOrAfter"):
            raise SamlRejected("saml_subject_confirmation", "The bearer confirmation has no "
                               "NotOnOrAfter.")
        check_window(data_el, now, skew, what="subject confirmation")
        expiry = saml_time(data_el.get("NotOnOrAfter"), "NotOnOrAfter")
        break
    if expiry is None:
        raise SamlRejected("saml_subject_confirmation", "The assertion has no bearer confirmation.")

    statements = root.findall(q(ns.SAML, "AuthnStatement"))
    attributes = attributes_of(root)
    authn = authn_facts(statements[0] if len(statements) == 1 else None, root)
    return verified_assertion(root, idp=idp, name_id=name_id, attributes=attributes, authn=authn,
                              conditions=conditions, confirmation_expiry=expiry,
                              in_response_to=None, uses_sha1=uses_sha1, now=now)
