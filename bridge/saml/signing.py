"""Our signatures on the SAML messages we send: RSA-SHA256, never SHA-1.

* HTTP-POST binding: an enveloped XML signature (XML-DSig with exclusive canonicalization and a
  SHA-256 digest), made by xmlsec, placed right after the message's ``Issuer`` as the SAML schema
  orders it (SAML Core §3.2.1, §5.4.1 and §5.4.2: the Reference names the message's ID).
* HTTP-Redirect binding: a signature over the exact bytes of the query string
  ``SAMLRequest=...&RelayState=...&SigAlg=...`` (SAML Bindings §3.4.4.1); the XML carries none.

The private key stays in this process: it is decrypted from the database by ``bridge.sp_keys``
and handed to xmlsec and pyca/cryptography only.
"""

from __future__ import annotations

import functools
import threading

import xmlsec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from bridge.saml import ns
from bridge.saml.keys import SigningKey
from bridge.saml.ns import q
from bridge.saml.xml_io import ensure_this_thread

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"

_local = threading.local()


@functools.lru_cache(maxsize=8)
def _rsa_key(private_key_pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the SP signing key must be an RSA key")
    return key


def _xmlsec_key(key: SigningKey) -> xmlsec.Key:
    # xmlsec keys are not shared between threads (as in bridge.saml.verify): one copy per thread.
    cache: dict[str, xmlsec.Key] | None = getattr(_local, "keys", None)
    if cache is None:
        cache = _local.keys = {}
    loaded = cache.get(key.id)
    if loaded is None:
        loaded = xmlsec.Key.from_memory(key.private_key_pem, xmlsec.constants.KeyDataFormatPem)
        loaded.load_cert_from_memory(key.certificate_pem, xmlsec.constants.KeyDataFormatCertPem)
        cache.clear()  # at most one key per thread: keys rotate rarely
        cache[key.id] = loaded
    return loaded


def sign_query(signed_part: bytes, key: SigningKey) -> bytes:
    """The HTTP-Redirect binding's Signature value (before base64): RSASSA-PKCS1-v1_5 with
    SHA-256 over ``signed_part``, the query string exactly as it is sent."""
    return _rsa_key(key.private_key_pem).sign(signed_part, padding.PKCS1v15(), hashes.SHA256())


def sign_enveloped(message: etree._Element, key: SigningKey) -> None:
    """Sign ``message`` (a SAML protocol message with an ``ID`` and an ``Issuer``) in place."""
    ensure_this_thread()
    message_id = message.get("ID")
    issuer = message.find(q(ns.SAML, "Issuer"))
    if not message_id or issuer is None or issuer.getparent() is not message:
        raise ValueError("a SAML message to sign needs an ID and an Issuer")
    signature = xmlsec.template.create(message, xmlsec.constants.TransformExclC14N,
                                       xmlsec.constants.TransformRsaSha256, ns="ds")
    # SAML Core §3.2.1 (RequestAbstractType) and §3.2.2 (StatusResponseType): Signature follows
    # Issuer.
    issuer.addnext(signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256,
                                              uri=f"#{message_id}")
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    # The certificate helps an IdP pick among the keys in our metadata; a careful IdP trusts only
    # those (SAML Metadata Interoperability Profile), never the certificate for its own sake.
    data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    xmlsec.template.x509_data_add_certificate(data)
    context = xmlsec.SignatureContext()
    context.key = _xmlsec_key(key)
    context.register_id(message, "ID")
    context.sign(signature)
