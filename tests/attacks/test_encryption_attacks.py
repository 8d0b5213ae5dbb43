"""Encrypted assertions: accepted when an IdP encrypts a signed assertion to our published
certificate; never taken as proof of anything, and never an oracle."""

from __future__ import annotations

import base64

import pytest
import xmlsec
from lxml import etree

from bridge.saml.xml_parser import MAX_ATTRIBUTES, MAX_DEPTH, MAX_NAMESPACES_IN_SCOPE
from bridge.sp_keys.manager import SamlKeys
from tests.attacks import xml_tools as x
from tests.attacks.conftest import Attack, clone
from tests.attacks.test_signature_attacks import ADMIN

AES256_GCM = xmlsec.constants.TransformAes256Gcm
AES256_CBC = xmlsec.constants.TransformAes256Cbc
DES3 = xmlsec.constants.TransformDes3Cbc
OAEP = xmlsec.constants.TransformRsaOaep
PKCS1 = xmlsec.constants.TransformRsaPkcs1


def sp_certificate(attack: Attack) -> str:
    keys: SamlKeys = attack.browser.bridge.sp_keys
    return keys.encryption_certificates()[0]


def encrypt_assertion(root: etree._Element, certificate_pem: str | bytes, *,
                      content=AES256_GCM, key_transport=OAEP) -> etree._Element:
    """Replace the Response's Assertion by an EncryptedAssertion, as an encrypting IdP does."""
    assertion = x.assertion(root)
    wrapper = etree.Element(f"{{{x.SAML}}}EncryptedAssertion")
    root.replace(assertion, wrapper)
    wrapper.append(assertion)
    template = xmlsec.template.encrypted_data_create(
        root, content, type=xmlsec.constants.TypeEncElement, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, key_transport)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    pem = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    manager.add_key(xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem))
    context = xmlsec.EncryptionContext(manager)
    size = 192 if content == DES3 else 256
    key_data = xmlsec.constants.KeyDataDes if content == DES3 else xmlsec.constants.KeyDataAes
    context.key = xmlsec.Key.generate(key_data, size, xmlsec.constants.KeyDataTypeSession)
    context.encrypt_xml(template, assertion)
    return root


def _encrypted(attack: Attack, *, sign_response: bool = False, **algorithms: object):  # type: ignore[no-untyped-def]
    login, root = attack.fresh()
    x.strip_signature(root)
    encrypt_assertion(root, sp_certificate(attack), **algorithms)  # type: ignore[arg-type]
    if sign_response:
        x.sign(root, attack.idp_keys)
    return login, root


def test_sp_metadata_advertises_the_encryption_certificate(attack: Attack) -> None:
    metadata = etree.fromstring(attack.browser.client.get("/saml/metadata").data)
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    keys = metadata.findall(f".//{{{md}}}KeyDescriptor[@use='encryption']")
    assert len(keys) == 1
    published = keys[0].find(f".//{{{x.DS}}}X509Certificate").text
    assert published in sp_certificate(attack).replace("\n", "")


def test_signed_assertion_encrypted_with_aes_gcm_is_accepted(attack: Attack) -> None:
    login, root = _encrypted(attack)
    assert root.find(f"{{{x.SAML}}}Assertion") is None
    attack.accepted(attack.post(root), login)


def test_signed_assertion_encrypted_with_aes_cbc_in_a_signed_response(attack: Attack) -> None:
    login, root = _encrypted(attack, content=AES256_CBC, sign_response=True)
    attack.accepted(attack.post(root), login)


def test_response_signature_over_the_ciphertext_is_checked(attack: Attack) -> None:
    _, root = _encrypted(attack, sign_response=True)
    issuer = x.one(root, "/samlp:Response/saml:Issuer")
    issuer.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:entity-evil")
    attack.refused(attack.post(root), "saml_signature_invalid")


def test_forged_encrypted_assertion_without_signature(attack: Attack) -> None:
    # Our encryption certificate is public: anyone can encrypt to it. Encryption proves nothing.
    _, root = attack.fresh()
    x.strip_signature(root)
    x.strip_signature(x.assertion(root))
    x.name_id(root).text = ADMIN
    encrypt_assertion(root, sp_certificate(attack))
    attack.refused(attack.post(root), "saml_signature_missing")


def test_forged_encrypted_assertion_signed_by_an_attacker(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    x.name_id(root).text = ADMIN
    x.sign(x.assertion(root), x.attacker_keypair())
    encrypt_assertion(root, sp_certificate(attack))
    attack.refused(attack.post(root), "saml_signature_invalid")


def test_triple_des_content_encryption_is_refused(attack: Attack) -> None:
    _, root = _encrypted(attack, content=DES3)
    attack.refused(attack.post(root), "saml_encryption_algorithm")


def test_rsa_pkcs1_v15_key_transport_is_refused(attack: Attack) -> None:
    # Bleichenbacher: a v1.5 key-transport oracle decrypts anything given enough queries.
    _, root = _encrypted(attack, key_transport=PKCS1)
    attack.refused(attack.post(root), "saml_encryption_algorithm")


def test_tampered_ciphertext_fails_with_one_code(attack: Attack) -> None:
    _, root = _encrypted(attack, content=AES256_CBC)
    value = x.one(root, "//saml:EncryptedAssertion/xenc:EncryptedData/xenc:CipherData/"
                        "xenc:CipherValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[-1] ^= 0x01  # the last padding byte: the classic CBC padding-oracle probe
    value.text = base64.b64encode(bytes(raw)).decode()
    attack.refused(attack.post(root), "saml_decryption_failed")


def test_encrypted_to_a_key_that_is_not_ours(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    encrypt_assertion(root, x.attacker_keypair().cert_pem)
    attack.refused(attack.post(root), "saml_decryption_failed")


def test_encrypted_and_plain_assertion_together(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    plain = clone(x.assertion(root))
    encrypt_assertion(root, sp_certificate(attack))
    root.append(plain)
    attack.refused(attack.post(root), "saml_assertion_count")


def test_plaintext_assertion_without_an_id(attack: Attack) -> None:
    # What is inside the ciphertext gets every check a plain assertion gets.
    _, root = attack.fresh()
    x.strip_signature(root)
    assertion = x.assertion(root)
    assertion.tag = f"{{{x.SAMLP}}}Extensions"
    wrapper = etree.Element(f"{{{x.SAML}}}Assertion")
    root.replace(assertion, wrapper)
    wrapper.append(assertion)
    encrypt_assertion(root, sp_certificate(attack))
    attack.refused(attack.post(root), "saml_malformed")


@pytest.mark.parametrize("hidden", ["comment", "instruction", "xinclude", "xinclude 2003",
                                    "deep nesting", "namespace flood", "attribute flood"])
def test_markup_hidden_in_the_plaintext_is_refused(attack: Attack, hidden: str) -> None:
    """What decryption puts into the document (nodes xmlsec made) gets the parser's node checks:
    a comment, a processing instruction, XInclude, nesting past the limit, or more attributes on
    an element or namespaces in scope than the limits inside the ciphertext is refused, with the
    one code every unusable plaintext gets."""
    _, root = attack.fresh()
    x.strip_signature(root)
    subject = x.one(root, "//saml:Assertion/saml:Subject")
    if hidden == "comment":
        subject.append(etree.Comment(" hidden "))
    elif hidden == "instruction":
        subject.append(etree.ProcessingInstruction("hidden", "data"))
    elif hidden.startswith("xinclude"):
        year = "2003" if hidden.endswith("2003") else "2001"
        etree.SubElement(subject, f"{{http://www.w3.org/{year}/XInclude}}include",
                         href="file:///etc/passwd", parse="text")
    elif hidden == "attribute flood":
        flooded = etree.SubElement(subject, f"{{{x.SAML}}}flooded")
        for i in range(MAX_ATTRIBUTES + 1):
            flooded.set(f"a{i}", "v")
    elif hidden == "namespace flood":
        etree.SubElement(subject, f"{{{x.SAML}}}flooded", nsmap={
            f"flood{i}": f"urn:flood:{i}" for i in range(MAX_NAMESPACES_IN_SCOPE + 1)})
    else:
        holder = subject
        for _ in range(MAX_DEPTH):
            holder = etree.SubElement(holder, f"{{{x.SAML}}}nest")
    encrypt_assertion(root, sp_certificate(attack))
    attack.refused(attack.post(root), "saml_decryption_failed")
