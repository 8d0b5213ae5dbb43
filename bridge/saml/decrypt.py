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
from bridge.saml.encrypted_shape import ELEMENT_TYPE, normalise_encrypted_assertion
from bridge.saml.keys import DecryptionKey
from bridge.saml.ns import q
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
    # SAML Core §2.2.4: Type SHOULD be present and then is #Element. Without it xmlsec hands back
    # raw bytes instead of parsing in place; one path for every IdP, and one way to fail.
    encrypted_data.set("Type", ELEMENT_TYPE)
    ensure_this_thread()
    for key in keys:
        manager = xmlsec.KeysManager()
        manager.add_key(xmlsec.Key.from_memory(key.private_key_pem,
                                               xmlsec.constants.KeyDataFormatPem))
        context = xmlsec.EncryptionContext(manager)
        try:
            decrypted = context.decrypt(encrypted_data)
        except Exception:  # noqa: BLE001 - whatever xmlsec raises, the answer is the same
            # AES-CBC is malleable: an attacker who can tell "the plaintext was bad" from "the
            # padding was bad" decrypts anything, byte by byte. So no outcome may differ.
            if encrypted_data.getparent() is not encrypted:
                raise _failed("decryption left the document changed") from None
            continue  # the next key (rollover)
        try:
            assertion = _the_assertion(encrypted, decrypted)
        except Exception as error:  # noqa: BLE001 - one code for every plaintext it could be
            raise _failed("the plaintext is not exactly one saml:Assertion",
                          why=type(error).__name__) from None
        parent = encrypted.getparent()
        assert parent is not None
        parent.replace(encrypted, assertion)
        return key
    raise _failed("no key decrypts it", keys=len(keys))


def _the_assertion(encrypted: etree._Element, decrypted: object) -> etree._Element:
    if not isinstance(decrypted, etree._Element) or decrypted.tag != q(ns.SAML, "Assertion"):
        raise ValueError("not an Assertion")
    if [c for c in encrypted if isinstance(c.tag, str)] != [decrypted]:
        raise ValueError("more than the Assertion")
    check_nodes(decrypted)  # comments, PIs, entity references, depth: as in a plain message
    return decrypted
