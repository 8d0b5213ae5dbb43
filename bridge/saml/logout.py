"""Single Logout messages from the IdP over the HTTP-Redirect binding: its signed
``LogoutRequest`` (IdP-initiated), and its signed ``LogoutResponse`` to ours (what we send is built
in ``bridge.saml.sp``).

The request must be signed (SAML Bindings §3.4.4.1: the signature covers the URL-encoded query
parameters exactly as sent), by one of the IdP's metadata certificates, with an allow-listed
algorithm; otherwise anyone could end anyone's sessions. Its content is read with the same hardened
parser as logins and checked like one: issuer, exact destination, expiry with the IdP's skew.

A signed URL passes through browsers and proxy logs, so a captured one must not end sessions again
later: it is accepted only shortly after its ``IssueInstant`` and only once (the caller enters the
IdP's entity ID and the request ID in the replay cache, kept until ``replay_expires_at``).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import PublicKeyAlgorithmOID
from lxml import etree

from bridge.clock import Clock
from bridge.errors import SamlRejected, TooLarge
from bridge.saml import ns
from bridge.saml.assertion_checks import check_id_length, saml_time, text_of
from bridge.saml.idp import MAX_CLOCK_SKEW, SamlIdp
from bridge.saml.ns import q
from bridge.saml.xml_parser import parse_untrusted

_HASHES = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}
_MAX_INFLATED = 64 * 1024
# How long after its IssueInstant (plus the IdP's clock skew) a LogoutRequest is accepted: the IdP
# stamps it as it redirects the browser, which brings it here within seconds. Not the skew alone:
# the skew may be set to 0, and the message is always a little old when it arrives. Shibboleth's
# MessageFlowRule applies the same kind of bound ("expires") to every incoming message.
LOGOUT_REQUEST_LIFETIME_SECONDS = 60


@dataclass(frozen=True)
class LogoutRequest:
    id: str
    name_id: str
    session_indexes: tuple[str, ...]
    # When a replay-cache entry for this request may go: no later than this can it be accepted,
    # whatever clock skew the IdP is ever given (the maximum, so that raising an IdP's skew
    # cannot make a purged request acceptable again).
    replay_expires_at: float


def _raw_parameters(query_string: str) -> dict[str, str]:
    # SAML Bindings §3.4.4.1 signs the URL-encoded bytes as sent, which are ASCII; a server that
    # passes raw bytes through (werkzeug's own does) must not turn them into a 500.
    if not query_string.isascii():
        raise SamlRejected("saml_malformed", "The query string is not URL-encoded ASCII.")
    raw: dict[str, str] = {}
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if name in raw:
            raise SamlRejected("saml_malformed", f"{name} appears twice in the query.")
        raw[name] = value
    return raw


def _verified_redirect_message(query_string: str, *, parameter: str,
                               idp: SamlIdp) -> etree._Element:
    """The message in ``parameter`` (``SAMLRequest`` or ``SAMLResponse``) of an HTTP-Redirect
    query, parsed after its signature verified with one of the IdP's metadata certificates."""
    raw = _raw_parameters(query_string)
    for required in (parameter, "SigAlg", "Signature"):
        if required not in raw:
            raise SamlRejected("saml_signature_missing",
                               "Logout messages must be signed (HTTP-Redirect binding).",
                               log_detail={"missing": required})
    algorithm = unquote_plus(raw["SigAlg"])
    if algorithm not in _HASHES:
        raise SamlRejected("saml_signature_algorithm", "The signature algorithm is not accepted.",
                           log_detail={"algorithm": algorithm})
    signed = "&".join(f"{name}={raw[name]}" for name in (parameter, "RelayState", "SigAlg")
                      if name in raw).encode("ascii")
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise SamlRejected("saml_malformed", "Signature is not base64.") from None
    kind, digest = _HASHES[algorithm]
    if not any(_verifies(cert.pem, kind, digest(), signature, signed)
               for cert in idp.metadata.signing_certificates):
        # The length tells an operator an ECDSA signature sent as DER instead of r||s apart.
        raise SamlRejected("saml_signature_invalid",
                           "The logout message's signature does not verify.",
                           log_detail={"algorithm": algorithm, "signature_bytes": len(signature)})

    try:
        deflated = base64.b64decode(unquote_plus(raw[parameter]), validate=True)
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(deflated, _MAX_INFLATED)
        if inflater.unconsumed_tail:
            raise TooLarge("saml_too_large", "The logout message is too large.")
    except (binascii.Error, ValueError, zlib.error):
        raise SamlRejected("saml_malformed", f"{parameter} is not deflated base64.") from None
    return parse_untrusted(xml, max_bytes=_MAX_INFLATED)


def _check_issue_instant(root: etree._Element, idp: SamlIdp, now: float) -> float:
    """SAML Core §3.2.1/§3.2.2: IssueInstant is required. Without a bound on it (NotOnOrAfter is
    optional and rarely sent) a captured message would be good forever. Returns the instant."""
    skew = idp.settings.clock_skew_seconds
    issued = saml_time(root.get("IssueInstant"), "IssueInstant")
    if issued > now + skew:
        raise SamlRejected("saml_not_yet_valid", "The logout message is not valid yet.",
                           log_detail={"issue_instant": root.get("IssueInstant"),
                                       "seconds_early": round(issued - now),
                                       "skew_seconds": skew})
    if issued + LOGOUT_REQUEST_LIFETIME_SECONDS <= now - skew:
        raise SamlRejected("saml_expired", "The logout message has expired.",
                           log_detail={"issue_instant": root.get("IssueInstant"),
                                       "seconds_old": round(now - issued),
                                       "lifetime_seconds": LOGOUT_REQUEST_LIFETIME_SECONDS,
                                       "skew_seconds": skew})
    return issued


def _check_issuer_and_destination(root: etree._Element, idp: SamlIdp,
                                  slo_url: str) -> None:
    issuer = root.find(q(ns.SAML, "Issuer"))
    if issuer is None or text_of(issuer) != idp.metadata.entity_id:
        raise SamlRejected("saml_issuer_mismatch", "The logout message comes from another IdP.")
    if root.get("Destination") != slo_url:
        raise SamlRejected("saml_destination_mismatch",
                           "The logout message was addressed to another endpoint.",
                           log_detail={"got": root.get("Destination"), "expected": slo_url})


def verify_logout_request(query_string: str, *, idp: SamlIdp, slo_url: str,
                          clock: Clock) -> LogoutRequest:
    root = _verified_redirect_message(query_string, parameter="SAMLRequest", idp=idp)
    if root.tag != q(ns.SAMLP, "LogoutRequest") or not root.get("ID"):
        raise SamlRejected("saml_malformed", "The message is not a LogoutRequest.")
    check_id_length(root, "LogoutRequest")
    request_id = root.get("ID", "")
    _check_issuer_and_destination(root, idp, slo_url)
    now, skew = clock.now(), idp.settings.clock_skew_seconds
    issued = _check_issue_instant(root, idp, now)
    not_on_or_after = root.get("NotOnOrAfter")
    if not_on_or_after and saml_time(not_on_or_after, "NotOnOrAfter") <= now - skew:
        raise SamlRejected("saml_expired", "The logout request has expired.",
                           log_detail={"not_on_or_after": not_on_or_after,
                                       "seconds_late": round(now - saml_time(not_on_or_after, "")),
                                       "skew_seconds": skew})
    name_id = root.find(q(ns.SAML, "NameID"))
    if name_id is None or len(name_id) or not text_of(name_id).strip():
        raise SamlRejected("saml_subject_missing", "The logout request names no one.")
    # Read exactly, as logins read them (assertion_checks.text_of): " ceo" is not "ceo".
    indexes = tuple(text_of(i) for i in root.findall(q(ns.SAMLP, "SessionIndex")))
    return LogoutRequest(request_id, text_of(name_id), tuple(i for i in indexes if i.strip()),
                         replay_expires_at=issued + LOGOUT_REQUEST_LIFETIME_SECONDS + MAX_CLOCK_SKEW)


def _verifies(pem: str, kind: str, digest: hashes.HashAlgorithm, signature: bytes,
              data: bytes) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False  # a key cryptography cannot read verifies nothing here
    # An RSA-PSS key (RFC 4055) is for PSS only, and rsa-sha* is PKCS#1 v1.5.
    if certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS:
        return False
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest)
            return True
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(_der_from_xmldsig(signature, key.curve), data, ec.ECDSA(digest))
            return True
    except InvalidSignature:
        return False
    return False


def _der_from_xmldsig(signature: bytes, curve: ec.EllipticCurve) -> bytes:
    """XML-DSig 1.1 §6.4.3 (RFC 4050 §3.3): an ECDSA SignatureValue is r and s, each as an
    unsigned big-endian integer of the curve's byte length, concatenated; that is what the
    HTTP-Redirect binding's Signature carries (xmlsec, Santuario). cryptography verifies DER, so
    convert. Any other length (including DER itself) is no signature for this key."""
    size = (curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        raise InvalidSignature
    return encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                int.from_bytes(signature[size:], "big"))


@dataclass(frozen=True)
class LogoutResponse:
    id: str
    in_response_to: str | None
    status: str
    # As for a LogoutRequest: the caller enters it in the replay cache until then.
    replay_expires_at: float = 0.0


def verify_logout_response(query_string: str, *, idp: SamlIdp, slo_url: str,
                           clock: Clock) -> LogoutResponse:
    """The IdP's answer to our LogoutRequest (HTTP-Redirect binding), checked as a LogoutRequest
    is: signed by the IdP (SAML Profiles §4.4.4.1), its Issuer, our exact Single Logout URL, a
    recent IssueInstant. It changes nothing here (the login ended when our request was made):
    it tells the person whether the IdP ended its session too."""
    root = _verified_redirect_message(query_string, parameter="SAMLResponse", idp=idp)
    if root.tag != q(ns.SAMLP, "LogoutResponse") or not root.get("ID"):
        raise SamlRejected("saml_malformed", "The message is not a LogoutResponse.")
    check_id_length(root, "LogoutResponse")
    _check_issuer_and_destination(root, idp, slo_url)
    issued = _check_issue_instant(root, idp, clock.now())
    code = root.find(f"{q(ns.SAMLP, 'Status')}/{q(ns.SAMLP, 'StatusCode')}")
    if code is None or not code.get("Value"):
        raise SamlRejected("saml_malformed", "The LogoutResponse has no status.")
    return LogoutResponse(root.get("ID", ""), root.get("InResponseTo"), code.get("Value", ""),
                          replay_expires_at=issued + LOGOUT_REQUEST_LIFETIME_SECONDS
                          + MAX_CLOCK_SKEW)
