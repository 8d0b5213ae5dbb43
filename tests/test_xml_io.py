"""The second wall: whatever reaches xmlsec, the XML libraries open no file or address and write
nothing to the process's stderr. These tests hand xmlsec documents the shape check would refuse,
directly, so that they prove this wall without the first one."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

import bridge.saml  # noqa: F401  (importing the package applies the lock-down)
from bridge.saml.keys import DecryptionKey
from tests.xml_io_tools import FifoWatch, encrypted_assertion

XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SECRET_LINE = "SECRET-PLAINTEXT-LINE <<< not xml"


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())


def child(parent: etree._Element, tag: str) -> etree._Element:
    # Nodes that xmlsec's own libxml2 created are not found by lxml's find(), which compares
    # interned names: compare the tag text instead.
    return next(c for c in parent if c.tag == tag)


def decrypt_directly(private_key: str, data: etree._Element) -> None:
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(private_key, xmlsec.constants.KeyDataFormatPem))
    with pytest.raises(xmlsec.Error):
        xmlsec.EncryptionContext(manager).decrypt(data)


def test_cipher_reference_is_not_followed_by_xmlsec(keypair: tuple[str, str], tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    private_key, certificate = keypair
    data = encrypted_assertion(certificate, b"<saml:Assertion/>")[0]
    cipher_data = child(data, f"{{{XENC}}}CipherData")
    cipher_data.remove(cipher_data[0])
    watch = FifoWatch(tmp_path / "fifo")
    try:
        etree.SubElement(cipher_data, f"{{{XENC}}}CipherReference", URI=watch.uri)
        with caplog.at_level(logging.WARNING, logger="bridge.saml.xml_io"):
            decrypt_directly(private_key, data)
    finally:
        watch.stop()
    assert not watch.opened
    assert any(watch.uri in r.getMessage() for r in caplog.records), "the refusal is logged"


def test_retrieval_method_is_not_followed_by_xmlsec(keypair: tuple[str, str],
                                                    tmp_path: Path) -> None:
    private_key, certificate = keypair
    data = encrypted_assertion(certificate, b"<saml:Assertion/>")[0]
    watch = FifoWatch(tmp_path / "fifo")
    try:
        key_info = child(data, f"{{{DS}}}KeyInfo")
        key_info.insert(0, etree.Element(f"{{{DS}}}RetrievalMethod", URI=watch.uri,
                                         Type=f"{XENC}EncryptedKey"))
        key_info.remove(key_info[1])
        decrypt_directly(private_key, data)
    finally:
        watch.stop()
    assert not watch.opened


def test_signature_reference_to_a_file_is_not_followed(keypair: tuple[str, str],
                                                       tmp_path: Path) -> None:
    private_key, certificate = keypair
    watch = FifoWatch(tmp_path / "fifo")
    try:
        document = etree.fromstring(b"<doc><data>x</data></doc>")
        signature = xmlsec.template.create(document, xmlsec.constants.TransformExclC14N,
                                           xmlsec.constants.TransformRsaSha256)
        document.append(signature)
        xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256, uri=watch.uri)
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_memory(certificate, xmlsec.constants.KeyDataFormatCertPem)
        with pytest.raises(xmlsec.Error):
            context.verify(signature)
    finally:
        watch.stop()
    assert not watch.opened


def test_libxml2_errors_go_to_the_log_not_stderr(keypair: tuple[str, str],
                                                 capfd: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # The plaintext is not XML: xmlsec's libxml2 reports a parse error that quotes it.
    private_key, certificate = keypair
    data = encrypted_assertion(certificate, SECRET_LINE.encode())[0]
    with caplog.at_level(logging.WARNING, logger="bridge.saml.xml_io"):
        decrypt_directly(private_key, data)
    captured = capfd.readouterr()
    assert "SECRET-PLAINTEXT" not in captured.err + captured.out
    assert any("libxml2" in r.getMessage() for r in caplog.records)


def test_a_fresh_process_and_its_threads_are_locked_down(keypair: tuple[str, str],
                                                         tmp_path: Path) -> None:
    """As a worker sees it: a thread that used libxml2 before ``bridge.saml`` was imported, and
    the decryption path used from that thread. Nothing on stderr, no file opened."""
    private_key, certificate = keypair
    (tmp_path / "key.pem").write_text(private_key)
    (tmp_path / "cert.pem").write_text(certificate)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        import logging, sys, threading, queue
        logging.basicConfig(filename={str(tmp_path / "log.txt")!r}, level=logging.INFO)
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        import xmlsec
        from lxml import etree
        from tests.xml_io_tools import encrypted_assertion
        cert = open({str(tmp_path / "cert.pem")!r}).read()
        key = open({str(tmp_path / "key.pem")!r}).read()
        jobs, done = queue.Queue(), queue.Queue()
        def worker():
            while True:
                job = jobs.get()
                if job is None:
                    return
                try:
                    job()
                    done.put("ok")
                except Exception as error:
                    code = getattr(error, "code", None)
                    done.put(type(error).__name__ + ": " + (code if isinstance(code, str) else str(error)))
        thread = threading.Thread(target=worker)
        thread.start()
        # This thread touches xmlsec's libxml2 before the lock-down exists.
        jobs.put(lambda: encrypted_assertion(cert, b"<a/>"))
        print(done.get())
        import bridge.saml
        from bridge.saml.decrypt import decrypt_assertion
        from bridge.saml.keys import DecryptionKey
        def attack():
            wrapper = encrypted_assertion(cert, {SECRET_LINE.encode()!r})
            decrypt_assertion(wrapper, [DecryptionKey("k", key, cert)])
        jobs.put(attack)
        print(done.get())
        def reference():
            wrapper = encrypted_assertion(cert, b"<a/>")
            data = wrapper[0]
            cipher = next(c for c in data if c.tag == "{{{XENC}}}CipherData")
            cipher.remove(cipher[0])
            etree.SubElement(cipher, "{{{XENC}}}CipherReference", URI={fifo.as_uri()!r})
            manager = xmlsec.KeysManager()
            manager.add_key(xmlsec.Key.from_memory(key, xmlsec.constants.KeyDataFormatPem))
            xmlsec.EncryptionContext(manager).decrypt(data)
        jobs.put(reference)
        print(done.get())
        jobs.put(None)
        thread.join()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok"
    assert lines[1] == "SamlRejected: saml_decryption_failed", lines
    assert lines[2].startswith("Error: "), lines  # refused, never blocked on the FIFO
    assert result.stderr == ""
    log = (tmp_path / "log.txt").read_text()
    assert "libxml2 (in xmlsec)" in log and "refused an XML library's attempt to open" in log


def test_the_decryption_path_still_decrypts(keypair: tuple[str, str]) -> None:
    from bridge.saml.decrypt import decrypt_assertion

    private_key, certificate = keypair
    wrapper = encrypted_assertion(
        certificate, f'<saml:Assertion xmlns:saml="{SAML}" ID="a1" Version="2.0"/>'.encode())
    parent = wrapper.getparent()
    decrypt_assertion(wrapper, [DecryptionKey("k", private_key, certificate)])
    assert parent[0].tag == f"{{{SAML}}}Assertion"
