"""Consume a SAML Response: untrusted base64 in, ``VerifiedAssertion`` out, or ``SamlRejected``.

Order matters. Cheap refusals first (size, XML shape, algorithm allow-list), then cryptography
against configured keys only, then the semantic checks of the Web Browser SSO profile on the very
element whose signature verified, then python3-saml's strict validation as a second, independent
opinion. Identity and attributes are read only from that verified assertion element.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from lxml import etree

from bridge.clock import Clock
from bridge.errors import SamlRejected, TooLarge
from bridge.saml import ns, onelogin
from bridge.saml.assertion_checks import (
    attributes_of,
    check_audience,
    check_window,
    one_child,
    saml_time,
    text_of,
)
from bridge.saml.decrypt import decrypt_assertion
from bridge.saml.failed_login import FailedAtIdp, has_no_assertion
from bridge.saml.idp import SamlIdp
from bridge.saml.keys import DecryptionKey
from bridge.saml.ns import q
from bridge.saml.signature_policy import SignedShape, check_response_shape
from bridge.saml.verified import VerifiedAssertion, authn_facts, verified_assertion
from bridge.saml.verify import verify_signature
from bridge.saml.xml_parser import parse_untrusted


@dataclass(frozen=True)
class ServiceProvider:
    entity_id: str
    acs_url: str


@dataclass(frozen=True)
class ReceivedResponse:
    """A parsed, shape-checked (and decrypted) Response that has NOT been verified yet."""

    # What python3-saml's second opinion validates: the message as posted or, for an encrypted
    # assertion, the Response as we decrypted it (see ``_as_decrypted``).
    second_opinion_b64: str
    shape: SignedShape
    # For an encrypted assertion in a signed Response: the Response as signed, before decryption
    # replaced the EncryptedAssertion, and the key that decrypted it.
    signed_original: SignedShape | None = None
    decryption_key: DecryptionKey | None = None

    @property
    def claimed_in_response_to(self) -> str | None:
        """Unverified: only for finding the outstanding request, which is checked again later."""
        for data in self.shape.assertion.iter(q(ns.SAML, "SubjectConfirmationData")):
            if data.get("InResponseTo"):
                return data.get("InResponseTo")
        return self.shape.response.get("InResponseTo")


def receive(
    saml_response: str,
    *,
    idp: SamlIdp,
    max_bytes: int,
    clock: Clock,
    decryption_keys: Sequence[DecryptionKey] = (),
) -> ReceivedResponse:
    """Decode, shape-check and (if needed) decrypt a posted ``SAMLResponse`` (HTTP-POST binding:
    plain base64)."""
    if len(saml_response) > max_bytes * 4 // 3 + 4:
        raise TooLarge("saml_too_large", "The SAML message is larger than this bridge accepts.",
                           log_detail={"bytes": len(saml_response), "limit": max_bytes})
    try:
        data = base64.b64decode("".join(saml_response.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SamlRejected("saml_malformed", "SAMLResponse is not valid base64.") from None
    root = parse_untrusted(data, max_bytes=max_bytes)
    if has_no_assertion(root):
        raise FailedAtIdp(root)  # the IdP reports why it sent none: bridge.saml.failed_login
    allow_sha1 = idp.settings.allows_sha1(clock.now())
    encrypted = root.find(q(ns.SAML, "EncryptedAssertion"))
    if encrypted is None:
        shape = check_response_shape(root, allow_sha1=allow_sha1)
        return ReceivedResponse(second_opinion_b64=saml_response, shape=shape)
    outer = check_response_shape(root, allow_sha1=allow_sha1, encrypted=True)
    signed_original = None
    if outer.response_signature is not None:
        # The Response signature covers the ciphertext: verify it on this copy, as received.
        original = copy.deepcopy(root)
        signed_original = check_response_shape(original, allow_sha1=allow_sha1, encrypted=True)
    key = decrypt_assertion(outer.assertion, decryption_keys)
    shape = check_response_shape(root, allow_sha1=allow_sha1)
    return ReceivedResponse(second_opinion_b64=_as_decrypted(shape), shape=shape,
                            signed_original=signed_original, decryption_key=key)


def _as_decrypted(shape: SignedShape) -> str:
    """The decrypted Response for python3-saml. It checks the assertion (its signature, its
    conditions, its subject) independently of us, as for a plain response; it does not decrypt
    again, so the ciphertext is handled by one implementation only, after our shape check, and no
    form of it can fail differently there. The Response's own signature covered the ciphertext
    and was verified over it (``signed_original``); over the plaintext it could not verify, so
    this copy goes without it."""
    response = copy.deepcopy(shape.response)
    if shape.response_signature is not None:
        for signature in response.findall(q(ns.DS, "Signature")):
            response.remove(signature)
    return base64.b64encode(etree.tostring(response)).decode("ascii")


def verify(
    received: ReceivedResponse,
    *,
    idp: SamlIdp,
    sp: ServiceProvider,
    expected_request_id: str | None,
    clock: Clock,
) -> VerifiedAssertion:
    """Verify signatures and every profile rule; return the facts of the signed assertion."""
    shape = received.shape
    response, assertion = shape.response, shape.assertion
    now = clock.now()
    skew = idp.settings.clock_skew_seconds

    if shape.assertion_signature is None:
        # Signed assertion required: a signed Response alone is refused (SAML Profiles §4.1.3.5
        # lets the IdP choose; we insist, because only the assertion carries identity).
        raise SamlRejected("saml_signature_missing", "The assertion is not signed.")
    if received.signed_original is not None:
        original = received.signed_original
        assert original.response_signature is not None
        verify_signature(original.response_signature, original.response, idp.keys,
                         uses_sha1=original.uses_sha1)
    elif shape.response_signature is not None:
        verify_signature(shape.response_signature, response, idp.keys, uses_sha1=shape.uses_sha1)
    verify_signature(shape.assertion_signature, assertion, idp.keys, uses_sha1=shape.uses_sha1,
                     as_parsed=received.decryption_key is None)

    _check_status(response)
    _check_issuers(response, assertion, idp.metadata.entity_id)

    # SAML Bindings §3.5.5.2: Destination must be present on signed or unsigned POSTed responses;
    # we insist on an exact match with the ACS URL we configured (not a prefix, not the Host).
    destination = response.get("Destination")
    if destination != sp.acs_url:
        raise SamlRejected("saml_destination_mismatch",
                           "The response was addressed to another endpoint.",
                           log_detail={"got": destination, "expected": sp.acs_url})

    conditions = one_child(assertion, q(ns.SAML, "Conditions"), "saml_malformed", "Conditions")
    check_window(conditions, now, skew, what="assertion")
    check_audience(conditions, sp.entity_id)

    subject = one_child(assertion, q(ns.SAML, "Subject"), "saml_subject_missing", "Subject")
    name_ids = subject.findall(q(ns.SAML, "NameID"))
    if len(name_ids) != 1 or not text_of(name_ids[0]).strip():
        raise SamlRejected("saml_subject_missing", "The assertion has no usable NameID.",
                           log_detail={"name_ids": len(name_ids)})
    name_id = name_ids[0]
    confirmation_expiry, in_response_to = _check_subject_confirmation(
        subject, sp, expected_request_id, now, skew
    )
    response_irt = response.get("InResponseTo")
    if response_irt is not None and response_irt != in_response_to:
        raise SamlRejected("saml_request_mismatch",
                           "The response answers a different request than its assertion.",
                           log_detail={"response": response_irt, "assertion": in_response_to})

    statement = one_child(assertion, q(ns.SAML, "AuthnStatement"), "saml_malformed",
                          "AuthnStatement")
    authn = authn_facts(statement, assertion)
    session_not_on_or_after = authn.session_not_on_or_after
    if session_not_on_or_after is not None and session_not_on_or_after <= now - skew:
        raise SamlRejected("saml_session_expired", "The IdP session has already ended.",
                           log_detail={"session_not_on_or_after": statement.get("SessionNotOnOrAfter"),
                                       "seconds_late": round(now - session_not_on_or_after)})

    attributes = attributes_of(assertion)

    onelogin.strict_validate(
        idp.onelogin_settings(sp),
        received.second_opinion_b64,
        acs_url=sp.acs_url,
        request_id=expected_request_id,
        now=now,
        skew_seconds=skew,
    )

    return verified_assertion(assertion, idp=idp, name_id=name_id, attributes=attributes,
                              authn=authn, conditions=conditions,
                              confirmation_expiry=confirmation_expiry,
                              in_response_to=in_response_to, uses_sha1=shape.uses_sha1,
                              now=now)


def _check_status(response: etree._Element) -> None:
    code = response.find(f"{q(ns.SAMLP, 'Status')}/{q(ns.SAMLP, 'StatusCode')}")
    value = code.get("Value") if code is not None else None
    if value != ns.STATUS_SUCCESS:
        raise SamlRejected("saml_status_not_success", "The IdP reported that login failed.",
                           log_detail={"status": value})


def _check_issuers(response: etree._Element, assertion: etree._Element, expected: str) -> None:
    # SAML Core §2.3.3: the assertion Issuer is required; the Response Issuer is optional but
    # must agree when present (Profiles §4.1.4.2).
    issuers = assertion.findall(q(ns.SAML, "Issuer"))
    if len(issuers) != 1 or text_of(issuers[0]) != expected:
        raise SamlRejected("saml_issuer_mismatch", "The assertion was issued by another IdP.",
                           log_detail={"got": [text_of(i) for i in issuers], "expected": expected})
    response_issuers = response.findall(q(ns.SAML, "Issuer"))
    if len(response_issuers) > 1 or (response_issuers and text_of(response_issuers[0]) != expected):
        raise SamlRejected("saml_issuer_mismatch", "The response was issued by another IdP.",
                           log_detail={"got": [text_of(i) for i in response_issuers],
                                       "expected": expected})


def _check_subject_confirmation(
    subject: etree._Element,
    sp: ServiceProvider,
    expected_request_id: str | None,
    now: float,
    skew: float,
) -> tuple[float, str | None]:
    """SAML Profiles §4.1.4.2-3: one bearer confirmation that fits us. Returns its expiry."""
    reasons = []
    for confirmation in subject.findall(q(ns.SAML, "SubjectConfirmation")):
        if confirmation.get("Method") != ns.CM_BEARER:
            reasons.append("method")
            continue
        data = confirmation.find(q(ns.SAML, "SubjectConfirmationData"))
        if data is None:
            reasons.append("no data")
            continue
        recipient = data.get("Recipient")
        if recipient != sp.acs_url:
            raise SamlRejected("saml_recipient_mismatch",
                               "The assertion was meant for another endpoint.",
                               log_detail={"got": recipient, "expected": sp.acs_url})
        in_response_to = data.get("InResponseTo")
        if expected_request_id is not None and in_response_to != expected_request_id:
            raise SamlRejected("saml_request_mismatch",
                               "The assertion does not answer the login request we sent.",
                               log_detail={"got": in_response_to, "expected": expected_request_id})
        if expected_request_id is None and in_response_to is not None:
            raise SamlRejected("saml_request_unknown",
                               "The assertion answers a login request we have no record of.",
                               log_detail={"in_response_to": in_response_to})
        not_on_or_after = data.get("NotOnOrAfter")
        if not not_on_or_after:
            raise SamlRejected("saml_subject_confirmation",
                               "The bearer confirmation has no NotOnOrAfter.")
        check_window(data, now, skew, what="subject confirmation")
        return saml_time(not_on_or_after, "NotOnOrAfter"), in_response_to
    raise SamlRejected("saml_subject_confirmation", "The assertion has no bearer confirmation.",
                       log_detail={"skipped": reasons})


class UnverifiedSubject(NamedTuple):
    name_id: str | None
    name_id_format: str | None
    attributes: dict[str, tuple[str, ...]]


def read_unverified(data: bytes, *, max_bytes: int) -> UnverifiedSubject:
    """NameID (with its format) and attributes of a Response or Assertion, WITHOUT verifying
    anything: only for previews an admin asks for, never for logins."""
    root = parse_untrusted(data, max_bytes=max_bytes)
    assertion = root if root.tag == q(ns.SAML, "Assertion") else root.find(q(ns.SAML, "Assertion"))
    if assertion is None:
        raise SamlRejected("saml_assertion_count", "No (unencrypted) Assertion found.")
    name_ids = assertion.findall(f"{q(ns.SAML, 'Subject')}/{q(ns.SAML, 'NameID')}")
    if len(name_ids) > 1:  # as verify() refuses it
        raise SamlRejected("saml_subject_missing", "The assertion has no usable NameID.",
                           log_detail={"name_ids": len(name_ids)})
    name_id = name_ids[0] if name_ids else None
    return UnverifiedSubject(text_of(name_id) if name_id is not None else None,
                             name_id.get("Format") if name_id is not None else None,
                             attributes_of(assertion))
