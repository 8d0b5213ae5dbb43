"""The keys both validators verify IdP signatures with are the certificates' bare public keys
(``verify.verification_key``): they must accept and refuse exactly what the certificates
themselves do, for RSA and EC keys, expired certificates included (a key set on the signature
context is used as it is; the certificate's dates are the metadata's business)."""

from __future__ import annotations

import datetime

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from bridge.saml.verify import verification_key

DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
NOW = datetime.datetime.now(datetime.UTC)


def _key_and_certificate(kind: str, *, expired: bool = False) -> tuple[bytes, bytes]:
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
           else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "idp.example.org")])
    end = NOW - datetime.timedelta(days=1) if expired else NOW + datetime.timedelta(days=30)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(NOW - datetime.timedelta(days=60)).not_valid_after(end)
                   .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            certificate.public_bytes(serialization.Encoding.PEM))


def _signed(private_pem: bytes, kind: str) -> bytes:
    """A document signed by xmlsec itself (enveloped, exclusive C14N, SHA-256)."""
    document = etree.fromstring(b'<a:Doc xmlns:a="urn:example" ID="_d1"><a:v>42</a:v></a:Doc>')
    method = (xmlsec.constants.TransformRsaSha256 if kind == "rsa"
              else xmlsec.constants.TransformEcdsaSha256)
    signature = xmlsec.template.create(document, xmlsec.constants.TransformExclC14N, method)
    document.append(signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256,
                                              uri="#_d1")
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.tree.add_ids(document, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(private_pem, xmlsec.constants.KeyDataFormatPem)
    context.sign(signature)
    return etree.tostring(document)


def _verifies(data: bytes, key: xmlsec.Key) -> bool:
    document = etree.fromstring(data)
    xmlsec.tree.add_ids(document, ["ID"])
    context = xmlsec.SignatureContext()
    context.key = key
    try:
        context.verify(document.find(f"{DSIG}Signature"))
    except xmlsec.Error:
        return False
    return True


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("expired", [False, True])
def test_a_bare_public_key_verifies_what_its_certificate_verifies(kind: str,
                                                                  expired: bool) -> None:
    private_pem, certificate_pem = _key_and_certificate(kind, expired=expired)
    _, other_certificate_pem = _key_and_certificate(kind)
    signed = _signed(private_pem, kind)
    tampered = signed.replace(b">42<", b">43<")

    def certificate_key(pem: bytes) -> xmlsec.Key:
        return xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem)

    for load in (certificate_key, verification_key):
        assert _verifies(signed, load(certificate_pem)), load
        assert not _verifies(tampered, load(certificate_pem)), load
        assert not _verifies(signed, load(other_certificate_pem)), load
    # Text as python3-saml passes it, and bytes, give the same key.
    assert _verifies(signed, verification_key(certificate_pem.decode()))
