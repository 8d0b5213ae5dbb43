"""XML signature verification against the IdP's configured certificates only.

The key always comes from metadata, never from the message's ``KeyInfo``. The common signature
shape is verified by ``enveloped`` (lxml's c14n and cryptography, about half the CPU); whatever
it does not verify goes to libxmlsec, whose context is restricted to the allow-listed transforms
so that, even if a shape check were ever missed, libxmlsec itself would refuse to run anything
else.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import xmlsec
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import PublicKeyAlgorithmOID
from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import enveloped
from bridge.saml.signature_policy import SHA1_DIGEST, SHA1_SIGNATURE
from bridge.saml.xml_io import ensure_this_thread

_SIGNATURE_TRANSFORMS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": xmlsec.constants.TransformEcdsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": xmlsec.constants.TransformEcdsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": xmlsec.constants.TransformEcdsaSha512,
    SHA1_SIGNATURE: xmlsec.constants.TransformRsaSha1,
}
_REFERENCE_TRANSFORMS = (
    xmlsec.constants.TransformEnveloped,
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformSha256,
    xmlsec.constants.TransformSha384,
    xmlsec.constants.TransformSha512,
)


# The keys a certificate may give bare: plain RSA and EC. Any other (an RSA-PSS key, which RFC 4055
# restricts to PSS and so to none of XML-DSig's rsa-sha* methods; Ed25519; ...) is loaded with
# its certificate, so that xmlsec applies what the certificate says of it, as it always did.
_BARE_KEY_ALGORITHMS = frozenset({PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5,
                                  PublicKeyAlgorithmOID.EC_PUBLIC_KEY})


def _bare_public_key(certificate_pem: str | bytes) -> enveloped.PublicKey | None:
    """The certificate's public key if it is plain RSA or EC; None for any other key, or a
    certificate cryptography cannot read."""
    pem = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        if certificate.public_key_algorithm_oid not in _BARE_KEY_ALGORITHMS:
            return None
        key = certificate.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, enveloped.PublicKey) else None


def verification_key(certificate_pem: str | bytes) -> xmlsec.Key:
    """The xmlsec key of a certificate's plain RSA or EC public key, without the certificate: a
    signature context copies the key it is given, and copying the certificate with it costs
    about 37 µs per signature, copying a bare public key under 1 µs. A key set on the context is
    used as it is (xmlsec checks no date or extension of its certificate), so the two verify
    the same signatures. Other keys, and what cryptography cannot read, are loaded with their
    certificate (which may raise ``xmlsec.Error``)."""
    key = _bare_public_key(certificate_pem)
    if key is not None:
        spki = key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo)
        return xmlsec.Key.from_memory(spki, xmlsec.constants.KeyDataFormatPem)
    pem = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    return xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem)


class CertificateKeys:
    """The keys of one IdP's signing certificates, loaded once: xmlsec's per thread, and the
    plain RSA and EC public keys (immutable, shared by every thread)."""

    def __init__(self, pems: Sequence[str]) -> None:
        self._pems = tuple(pems)
        self._local = threading.local()
        self.public = tuple(key for key in map(_bare_public_key, self._pems) if key is not None)

    def loaded(self) -> list[xmlsec.Key]:
        # xmlsec keys are not shared between threads; each thread loads its own copy once. A
        # certificate whose key xmlsec cannot load (an Ed25519 key beside the IdP's RSA one)
        # verifies nothing we accept: left out, so the others still verify, and tried again
        # next time rather than remembered as missing.
        keys = getattr(self._local, "keys", None)
        if keys is None:
            keys, complete = [], True
            for pem in self._pems:
                try:
                    keys.append(verification_key(pem))
                except xmlsec.Error:
                    complete = False
            if complete:
                self._local.keys = keys
        return keys


def verify_signature(
    signature: etree._Element, signed: etree._Element, keys: CertificateKeys, *, uses_sha1: bool,
    as_parsed: bool = True,
) -> None:
    """Raise ``SamlRejected`` unless one configured key verifies ``signature`` over ``signed``.
    ``as_parsed``: False when xmlsec made ``signed`` (a decrypted assertion), which libxmlsec
    alone then verifies (``enveloped``)."""
    if not (as_parsed and enveloped.verifies(signature, signed, keys.public,
                                             uses_sha1=uses_sha1)):
        verify_with_xmlsec(signature, signed, keys, uses_sha1=uses_sha1)


def verify_with_xmlsec(
    signature: etree._Element, signed: etree._Element, keys: CertificateKeys, *, uses_sha1: bool
) -> None:
    """``verify_signature`` by libxmlsec alone: every shape the allow-list admits."""
    # Register the ID attribute of the signed element only; the shape check has already made
    # every ID in the document unique.
    ensure_this_thread()
    xmlsec.tree.add_ids(signed, ["ID"])
    method = signature.find("{http://www.w3.org/2000/09/xmldsig#}SignedInfo/"
                            "{http://www.w3.org/2000/09/xmldsig#}SignatureMethod")
    algorithm = method.get("Algorithm") if method is not None else None
    signature_transform = _SIGNATURE_TRANSFORMS.get(algorithm or "")
    if signature_transform is None:
        raise SamlRejected("saml_signature_algorithm", "The signature algorithm is not accepted.")
    errors = []
    for key in keys.loaded():
        context = xmlsec.SignatureContext()
        context.key = key
        context.enable_signature_transform(signature_transform)
        context.enable_signature_transform(xmlsec.constants.TransformExclC14N)
        for transform in _REFERENCE_TRANSFORMS:
            context.enable_reference_transform(transform)
        if uses_sha1:
            context.enable_reference_transform(xmlsec.constants.TransformSha1)
        try:
            context.verify(signature)
            return
        except xmlsec.Error as exc:
            errors.append(str(exc))
    raise SamlRejected(
        "saml_signature_invalid",
        "The signature does not verify with any of the IdP's signing certificates.",
        log_detail={"xmlsec": errors[:3]},
    )


__all__ = ["CertificateKeys", "verify_signature", "verify_with_xmlsec", "verification_key",
           "SHA1_DIGEST"]
