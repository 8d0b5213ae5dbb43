"""Light helpers for the XML I/O tests (no pysaml2, so a subprocess can import them quickly)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path

import xmlsec
from lxml import etree

XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


class FifoWatch:
    """A named pipe, and a thread that notices when anyone opens it for reading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = False
        self._stop = threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return self.path.as_uri()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                # Opening the write end without blocking succeeds only while a reader has the
                # pipe open; a reader blocks in open() until then, so it cannot be missed.
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                assert error.errno == errno.ENXIO
                time.sleep(0.001)
                continue
            self.opened = True
            with contextlib.suppress(OSError):
                os.write(fd, b"SECRET-FIRST-LINE <not xml>\n")
            os.close(fd)
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def encrypted_assertion(certificate: str, plaintext: bytes) -> etree._Element:
    """``<EncryptedAssertion>`` whose EncryptedData decrypts to ``plaintext``, in the plain form."""
    root = etree.fromstring(f'<r xmlns:saml="{SAML}"><saml:EncryptedAssertion/></r>'.encode())
    wrapper = root[0]
    template = xmlsec.template.encrypted_data_create(
        root, xmlsec.constants.TransformAes256Cbc, type=xmlsec.constants.TypeEncContent, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(certificate, xmlsec.constants.KeyDataFormatCertPem))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256,
                                      xmlsec.constants.KeyDataTypeSession)
    data = context.encrypt_binary(template, plaintext)
    data.set("Type", f"{XENC}Element")
    wrapper.append(data)
    return wrapper
