"""Decrypt an ``EncryptedAssertion`` (XML Encryption 1.1) in place.

Encryption hides an assertion from the browser; it proves nothing about who wrote it (our
encryption certificate is public). The decrypted assertion goes through every check a plain one
does, signature first. The shape and the algorithms are allow-listed before xmlsec runs
(``encrypted_shape``): AES-GCM or AES-CBC for the content, RSA-OAEP for the key (RSA PKCS#1 v1.5
key transport is open to Bleichenbacher's attack; 3DES has 64-bit blocks). Every failure of the
decryption itself has the same code, so a padding oracle learns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import xmlsec
from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.encrypted_shape import normalise_encrypted_assertion
from bridge.saml.ns import q
from bridge.saml.sp_keys import DecryptionKey
from bridge.saml.xml_io import ensure_this_thread
from bridge.saml.xml_parser import check_nodes


def _failed(reason: str, **detail: object) -> SamlRejected:
    return SamlRejected("saml_decryption_failed", "The encrypted assertion could not be decrypted.",
                        log_detail={"reason": reason, **detail})


def decrypt_assertion(encrypted: etree._Element, keys: Sequence[DecryptionKey]) -> DecryptionKey:
    """Replace ``encrypted`` (a saml:EncryptedAssertion) by its Assertion; return the key used."""
    if not keys:
        raise SamlRejected("saml_encrypted_unsupported",
                           "This bridge has no decryption key configured.")
    # First wall: nothing that names a URI or asks for a lookup reaches xmlsec. Second wall
    # (xml_io): xmlsec could not open one anyway.
    encrypted_data = normalise_encrypted_assertion(encrypted)
    ensure_this_thread()
    for key in keys:
        manager = xmlsec.KeysManager()
        manager.add_key(xmlsec.Key.from_memory(key.private_key_pem,
                                               xmlsec.constants.KeyDataFormatPem))
        context = xmlsec.EncryptionContext(manager)
        try:
            decrypted = context.decrypt(encrypted_data)
        except (xmlsec.Error, etree.LxmlError, ValueError):
            if encrypted.find(q(ns.XENC, "EncryptedData")) is not encrypted_data:
                raise _failed("decryption left the document changed") from None
            continue  # the next key (rollover)
        assertion = decrypted if decrypted.tag == q(ns.SAML, "Assertion") else None
        children = [c for c in encrypted if isinstance(c.tag, str)]
        if assertion is None or children != [assertion]:
            raise _failed("the plaintext is not exactly one saml:Assertion")
        check_nodes(assertion)
        parent = encrypted.getparent()
        assert parent is not None
        parent.replace(encrypted, assertion)
        return key
    raise _failed("no key decrypts it", keys=len(keys))
