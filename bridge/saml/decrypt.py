"""Decrypt an ``EncryptedAssertion`` (XML Encryption 1.1) in place.

Encryption hides an assertion from the browser; it proves nothing about who wrote it (our
encryption certificate is public). The decrypted assertion goes through every check a plain one
does, signature first. Algorithms are allow-listed before xmlsec runs: AES-GCM or AES-CBC for the
content, RSA-OAEP for the key (RSA PKCS#1 v1.5 key transport is open to Bleichenbacher's attack;
3DES has 64-bit blocks). Every failure here has the same code, so a padding oracle learns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import xmlsec
from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.ns import q
from bridge.saml.sp_keys import DecryptionKey
from bridge.saml.xml_parser import check_nodes

CONTENT_ALGORITHMS = frozenset({
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
})
KEY_TRANSPORT_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
})
_ENCRYPTED_DATA = q(ns.XENC, "EncryptedData")
_ENCRYPTED_KEY = q(ns.XENC, "EncryptedKey")
_METHOD = q(ns.XENC, "EncryptionMethod")


def _failed(reason: str, **detail: object) -> SamlRejected:
    return SamlRejected("saml_decryption_failed", "The encrypted assertion could not be decrypted.",
                        log_detail={"reason": reason, **detail})


def decrypt_assertion(encrypted: etree._Element, keys: Sequence[DecryptionKey]) -> DecryptionKey:
    """Replace ``encrypted`` (a saml:EncryptedAssertion) by its Assertion; return the key used."""
    if not keys:
        raise SamlRejected("saml_encrypted_unsupported",
                           "This bridge has no decryption key configured.")
    data = encrypted.findall(_ENCRYPTED_DATA)
    if len(data) != 1:
        raise _failed("expected one EncryptedData", found=len(data))
    encrypted_data = data[0]
    method = encrypted_data.find(_METHOD)
    algorithm = method.get("Algorithm") if method is not None else None
    if algorithm not in CONTENT_ALGORITHMS:
        raise SamlRejected("saml_encryption_algorithm",
                           "The assertion is encrypted with an algorithm we do not accept.",
                           log_detail={"algorithm": algorithm})
    key_info = encrypted_data.find(q(ns.DS, "KeyInfo"))
    if key_info is None:
        raise _failed("no KeyInfo")
    # Some IdPs put the EncryptedKey beside the EncryptedData and point at it with a
    # RetrievalMethod; xmlsec looks for it inside KeyInfo, so move it there.
    for retrieval in key_info.findall(q(ns.DS, "RetrievalMethod")):
        target = (retrieval.get("URI") or "").removeprefix("#")
        for candidate in encrypted.findall(_ENCRYPTED_KEY):
            if target and candidate.get("Id") == target:
                key_info.remove(retrieval)
                key_info.append(candidate)
    encrypted_keys = key_info.findall(_ENCRYPTED_KEY)
    if len(encrypted_keys) != 1:
        raise _failed("expected one EncryptedKey", found=len(encrypted_keys))
    key_method = encrypted_keys[0].find(_METHOD)
    key_algorithm = key_method.get("Algorithm") if key_method is not None else None
    if key_algorithm not in KEY_TRANSPORT_ALGORITHMS:
        raise SamlRejected("saml_encryption_algorithm",
                           "The assertion's key is encrypted with an algorithm we do not accept.",
                           log_detail={"algorithm": key_algorithm})

    for key in keys:
        manager = xmlsec.KeysManager()
        manager.add_key(xmlsec.Key.from_memory(key.private_key_pem,
                                               xmlsec.constants.KeyDataFormatPem))
        context = xmlsec.EncryptionContext(manager)
        try:
            decrypted = context.decrypt(encrypted_data)
        except (xmlsec.Error, etree.LxmlError, ValueError):
            if encrypted.find(_ENCRYPTED_DATA) is not encrypted_data:
                raise _failed("decryption left the document changed") from None
            continue  # the next key (rollover)
        assertion = decrypted if decrypted.tag == q(ns.SAML, "Assertion") else None
        children = [c for c in encrypted if isinstance(c.tag, str) and c.tag != _ENCRYPTED_KEY]
        if assertion is None or children != [assertion]:
            raise _failed("the plaintext is not exactly one saml:Assertion")
        check_nodes(assertion)
        parent = encrypted.getparent()
        assert parent is not None
        parent.replace(encrypted, assertion)
        return key
    raise _failed("no key decrypts it", keys=len(keys))
