"""Encrypted assertions that point the decryptor somewhere: CipherReference, RetrievalMethod,
Transforms and every other child XML Encryption allows but no IdP sends.

Anyone can encrypt to our published certificate and post the result without logging in, so each
of these is an unauthenticated request. The first wall (the shape check) must refuse them with one
code before xmlsec runs; the tests watch a FIFO to prove the named file is never even opened.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from tests.attacks import xml_tools as x
from tests.attacks.conftest import Attack
from tests.attacks.test_encryption_attacks import _encrypted, sp_certificate
from tests.xml_io_tools import FifoWatch

CODE = "saml_encryption_structure"
XENC11 = "http://www.w3.org/2009/xmlenc11#"


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[FifoWatch]:
    watch = FifoWatch(tmp_path / "local-file")
    yield watch
    watch.stop()


def _el(tag: str, namespace: str = x.XENC, **attributes: str) -> etree._Element:
    return etree.Element(f"{{{namespace}}}{tag}", **attributes)


def _data(root: etree._Element) -> etree._Element:
    return x.one(root, "//saml:EncryptedAssertion/xenc:EncryptedData")


def _key(root: etree._Element) -> etree._Element:
    return x.one(root, "//xenc:EncryptedData/ds:KeyInfo/xenc:EncryptedKey")


def _cipher_reference(cipher_data: etree._Element, uri: str, *, transforms: bool = False) -> None:
    for child in list(cipher_data):
        cipher_data.remove(child)
    reference = etree.SubElement(cipher_data, f"{{{x.XENC}}}CipherReference", URI=uri)
    if transforms:
        container = etree.SubElement(reference, f"{{{x.XENC}}}Transforms")
        etree.SubElement(container, f"{{{x.DS}}}Transform",
                         Algorithm="http://www.w3.org/2000/09/xmldsig#base64")


def _post_refused(attack: Attack, change: Callable[[etree._Element], object],
                  code: str = CODE) -> None:
    _, root = _encrypted(attack)
    change(root)
    started = time.monotonic()
    response = attack.post(root)
    attack.refused(response, code)
    # Refused on sight, not after reading anything.
    assert time.monotonic() - started < 5


def test_cipher_reference_to_dev_zero_is_refused_before_any_read(attack: Attack) -> None:
    # The memory exhaustion: one anonymous request made the worker read /dev/zero until killed.
    _post_refused(attack, lambda root: _cipher_reference(
        x.one(_data(root), "xenc:CipherData"), "file:///dev/zero"))


def test_cipher_reference_in_encrypted_data_never_opens_the_file(attack: Attack,
                                                                  fifo: FifoWatch) -> None:
    _post_refused(attack, lambda root: _cipher_reference(
        x.one(_data(root), "xenc:CipherData"), fifo.uri))
    assert not fifo.opened


def test_cipher_reference_in_encrypted_key_never_opens_the_file(attack: Attack,
                                                                 fifo: FifoWatch) -> None:
    _post_refused(attack, lambda root: _cipher_reference(
        x.one(_key(root), "xenc:CipherData"), fifo.uri, transforms=True))
    assert not fifo.opened


def test_cipher_reference_to_a_network_address_is_refused(attack: Attack) -> None:
    _post_refused(attack, lambda root: _cipher_reference(
        x.one(_data(root), "xenc:CipherData"), "http://169.254.169.254/latest/meta-data/"))


def test_retrieval_method_to_a_local_file_never_opens_it(attack: Attack, fifo: FifoWatch) -> None:
    def change(root: etree._Element) -> None:
        key_info = x.one(_data(root), "ds:KeyInfo")
        key_info.insert(0, _el("RetrievalMethod", x.DS, URI=fifo.uri,
                               Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey"))
    _post_refused(attack, change)
    assert not fifo.opened


def test_retrieval_method_replacing_the_encrypted_key_is_refused(attack: Attack,
                                                                  fifo: FifoWatch) -> None:
    def change(root: etree._Element) -> None:
        key_info = x.one(_data(root), "ds:KeyInfo")
        key_info.replace(_key(root), _el("RetrievalMethod", x.DS, URI=fifo.uri,
                                         Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey"))
    _post_refused(attack, change)
    assert not fifo.opened


def test_retrieval_method_inside_the_encrypted_key_is_refused(attack: Attack,
                                                               fifo: FifoWatch) -> None:
    def change(root: etree._Element) -> None:
        key = _key(root)
        key_info = _el("KeyInfo", x.DS)
        key_info.append(_el("RetrievalMethod", x.DS, URI=fifo.uri))
        key.insert(1, key_info)
    _post_refused(attack, change)
    assert not fifo.opened


def test_same_document_retrieval_method_with_transforms_is_refused(attack: Attack) -> None:
    def change(root: etree._Element) -> None:
        key = _key(root)
        key.set("Id", "peer-key")
        x.one(_data(root), "ds:KeyInfo").remove(key)
        x.one(root, "//saml:EncryptedAssertion").append(key)
        retrieval = _el("RetrievalMethod", x.DS, URI="#peer-key")
        transforms = etree.SubElement(retrieval, f"{{{x.DS}}}Transforms")
        etree.SubElement(transforms, f"{{{x.DS}}}Transform",
                         Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116")
        x.one(_data(root), "ds:KeyInfo").append(retrieval)
    _post_refused(attack, change)


@pytest.mark.parametrize("extra", ["KeyValue", "KeyName", "X509Data", "EncryptedKey", "MgmtData"])
def test_any_other_key_info_child_of_encrypted_data_is_refused(attack: Attack, extra: str) -> None:
    def change(root: etree._Element) -> None:
        namespace = x.XENC if extra == "EncryptedKey" else x.DS
        element = _el(extra, namespace)
        if extra == "EncryptedKey":
            element = etree.fromstring(etree.tostring(_key(root)))
        x.one(_data(root), "ds:KeyInfo").append(element)
    _post_refused(attack, change)


@pytest.mark.parametrize("where", ["assertion", "data", "key"])
def test_encryption_properties_and_foreign_children_are_refused(attack: Attack, where: str) -> None:
    def change(root: etree._Element) -> None:
        if where == "assertion":
            x.one(root, "//saml:EncryptedAssertion").append(_el("Extra", "urn:example:evil"))
        elif where == "data":
            _data(root).append(_el("EncryptionProperties"))
        else:
            _key(root).append(_el("EncryptionProperties"))
    _post_refused(attack, change)


def test_cipher_value_with_markup_is_refused(attack: Attack) -> None:
    def change(root: etree._Element) -> None:
        value = x.one(_data(root), "xenc:CipherData/xenc:CipherValue")
        value.append(_el("CipherReference", URI="file:///etc/passwd"))
    _post_refused(attack, change)


def test_key_transport_parameter_outside_the_allow_list_is_refused(attack: Attack) -> None:
    def change(root: etree._Element) -> None:
        method = x.one(_key(root), "xenc:EncryptionMethod")
        method.append(_el("DigestMethod", x.DS, Algorithm="http://www.w3.org/2001/04/xmldsig-more#md5"))
    _post_refused(attack, change, code="saml_encryption_algorithm")


# --- the forms real IdPs send keep working ------------------------------------------------------

def test_encrypted_key_beside_the_data_with_a_same_document_reference_is_accepted(
        attack: Attack) -> None:
    # SAML Core §2.2.4 lets the IdP put the EncryptedKey beside the EncryptedData.
    login, root = _encrypted(attack)
    key = _key(root)
    key.set("Id", "peer-key")
    key.set("Recipient", "https://bridge.example")
    x.one(_data(root), "ds:KeyInfo").remove(key)
    x.one(root, "//saml:EncryptedAssertion").append(key)
    x.one(_data(root), "ds:KeyInfo").append(
        _el("RetrievalMethod", x.DS, URI="#peer-key",
            Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey"))
    attack.accepted(attack.post(root), login)


def test_encrypted_key_naming_our_certificate_and_oaep_digest_is_accepted(attack: Attack) -> None:
    # Okta, Shibboleth and AD FS name the recipient certificate and the OAEP digest.
    login, root = _encrypted(attack)
    key = _key(root)
    method = x.one(key, "xenc:EncryptionMethod")
    method.append(_el("DigestMethod", x.DS, Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"))
    key_info = _el("KeyInfo", x.DS)
    etree.SubElement(key_info, f"{{{x.DS}}}KeyName").text = "bridge-encryption"
    data = etree.SubElement(key_info, f"{{{x.DS}}}X509Data")
    pem = sp_certificate(attack)
    body = "".join(line for line in pem.splitlines() if "CERTIFICATE" not in line)
    etree.SubElement(data, f"{{{x.DS}}}X509Certificate").text = body
    method.addnext(key_info)
    attack.accepted(attack.post(root), login)


def test_refusal_is_independent_of_the_ciphertext(attack: Attack) -> None:
    # The shape is judged before any key is tried: garbage ciphertext gets the same answer as a
    # real one, so this code says nothing about our keys.
    def change(root: etree._Element) -> None:
        value = x.one(_data(root), "xenc:CipherData/xenc:CipherValue")
        value.text = base64.b64encode(os.urandom(64)).decode()
        _data(root).append(_el("EncryptionProperties"))
    _post_refused(attack, change)


# --- no decryption oracle: every plaintext, every padding, the same answer -----------------------

def _session_key_for(attack: Attack, key: bytes) -> etree._Element:
    """An EncryptedKey holding ``key`` for our published certificate, as anyone can make one."""
    certificate = x509.load_pem_x509_certificate(sp_certificate(attack).encode())
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    wrapped = public_key.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                                   algorithm=hashes.SHA1(), label=None))
    encrypted_key = _el("EncryptedKey")
    etree.SubElement(encrypted_key, f"{{{x.XENC}}}EncryptionMethod",
                     Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p")
    data = etree.SubElement(encrypted_key, f"{{{x.XENC}}}CipherData")
    etree.SubElement(data, f"{{{x.XENC}}}CipherValue").text = base64.b64encode(wrapped).decode()
    return encrypted_key


def _chosen_plaintext(attack: Attack, blocks: bytes, *, typed: bool) -> bytes:
    """A Response whose EncryptedData decrypts (AES-256-CBC, no padding added) to ``blocks``."""
    key, iv = os.urandom(32), os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = iv + encryptor.update(blocks) + encryptor.finalize()
    _, root = attack.fresh()
    x.strip_signature(root)
    encrypted = _el("EncryptedAssertion", x.SAML)
    root.replace(x.assertion(root), encrypted)
    data = etree.SubElement(encrypted, f"{{{x.XENC}}}EncryptedData")
    if typed:
        data.set("Type", "http://www.w3.org/2001/04/xmlenc#Element")
    etree.SubElement(data, f"{{{x.XENC}}}EncryptionMethod",
                     Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc")
    etree.SubElement(data, f"{{{x.DS}}}KeyInfo").append(_session_key_for(attack, key))
    cipher_data = etree.SubElement(data, f"{{{x.XENC}}}CipherData")
    etree.SubElement(cipher_data, f"{{{x.XENC}}}CipherValue").text = (
        base64.b64encode(ciphertext).decode())
    return etree.tostring(root)


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
def test_padding_and_plaintext_are_no_oracle(attack: Attack, typed: bool) -> None:
    """The CBC padding oracle (Vaudenay) and the XML parse oracle (Jager and Somorovsky, "How to
    break XML encryption"): whatever the last byte (the padding length xmlsec reads) and whatever
    the plaintext turns out to be, the answer is the same 400 with the same code."""
    answers = set()
    plaintexts = [b"A" * 15 + bytes([last]) for last in (*range(0, 18), 0x41, 0x80, 0xFF)]
    plaintexts += [b"just some text\x02\x02", b"<a>text</a>\x05\x05\x05\x05\x05",
                   b"<saml:Assertion\x01", b"&amp;&amp;&amp;\x01"]
    for plaintext in plaintexts:
        response = attack.post(_chosen_plaintext(attack, plaintext, typed=typed))
        answers.add((response.status_code, response.get_json()["code"]))
        assert "Location" not in response.headers
    assert answers == {(400, "saml_decryption_failed")}
    assert attack.issued() == (0, 0, 0, 0)


def test_an_idp_that_leaves_out_the_type_attribute_logs_in(attack: Attack) -> None:
    # SAML Core §2.2.4: Type SHOULD be present, so some IdPs leave it out.
    login, root = _encrypted(attack)
    del _data(root).attrib["Type"]
    attack.accepted(attack.post(root), login)


def test_a_recipient_hint_that_is_no_certificate_is_ignored(attack: Attack) -> None:
    # The hint is checked for shape and dropped; nothing ever parses it as a certificate.
    login, root = _encrypted(attack)
    key_info = _el("KeyInfo", x.DS)
    data = etree.SubElement(key_info, f"{{{x.DS}}}X509Data")
    etree.SubElement(data, f"{{{x.DS}}}X509Certificate").text = "AAAA"
    x.one(_key(root), "xenc:EncryptionMethod").addnext(key_info)
    attack.accepted(attack.post(root), login)
