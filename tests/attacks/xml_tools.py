"""The attacker's workbench: take a valid Response minted by the pysaml2 IdP, change it at the XML
level, and (where the attack calls for it) sign it again with python-xmlsec: with the IdP's own key
to play an IdP that really sent odd content, or with an attacker's key to play a forger."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import secrets
from dataclasses import dataclass
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
NS = {"saml": SAML, "samlp": SAMLP, "ds": DS, "xenc": XENC}

RSA_SHA256 = xmlsec.constants.TransformRsaSha256
RSA_SHA1 = xmlsec.constants.TransformRsaSha1
SHA256 = xmlsec.constants.TransformSha256
SHA1 = xmlsec.constants.TransformSha1


@dataclass(frozen=True)
class KeyPair:
    key_pem: bytes
    cert_pem: bytes

    @property
    def cert_b64(self) -> str:
        return "".join(line for line in self.cert_pem.decode().splitlines() if "CERTIFICATE" not in line)


def load_keypair(directory: Path) -> KeyPair:
    return KeyPair((directory / "idp.key").read_bytes(), (directory / "idp.crt").read_bytes())


@functools.cache
def attacker_keypair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bridge development IdP")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return KeyPair(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM),
    )


# --- (de)serialization -----------------------------------------------------------------------

def decode(saml_response: str) -> etree._Element:
    return etree.fromstring(base64.b64decode(saml_response))


def encode(root: etree._Element | bytes) -> str:
    data = root if isinstance(root, bytes) else etree.tostring(root)
    return base64.b64encode(data).decode("ascii")


def one(root: etree._Element, xpath: str) -> etree._Element:
    found = root.xpath(xpath, namespaces=NS)
    assert len(found) == 1, f"{xpath}: {len(found)} matches"
    return found[0]


def assertion(root: etree._Element) -> etree._Element:
    return one(root, "/samlp:Response/saml:Assertion")


def name_id(root: etree._Element) -> etree._Element:
    return one(root, "//saml:Assertion/saml:Subject/saml:NameID")


def signature_of(element: etree._Element) -> etree._Element | None:
    return element.find(f"{{{DS}}}Signature")


def strip_signature(element: etree._Element) -> None:
    signature = signature_of(element)
    if signature is not None:
        element.remove(signature)


def new_id() -> str:
    return "_" + secrets.token_hex(16)


def saml_time(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- signing ---------------------------------------------------------------------------------

def sign(element: etree._Element, keys: KeyPair, *, method=RSA_SHA256, digest=SHA256,
         uri: str | None = None, prefixes: str | None = None) -> etree._Element:
    """Replace ``element``'s enveloped signature with a fresh one made by ``keys``; with
    ``prefixes``, an InclusiveNamespaces PrefixList on its exclusive c14n transform."""
    strip_signature(element)
    signature = xmlsec.template.create(element, xmlsec.constants.TransformExclC14N, method, ns="ds")
    issuer = element.find(f"{{{SAML}}}Issuer")
    element.insert(element.index(issuer) + 1 if issuer is not None else 0, signature)
    reference = xmlsec.template.add_reference(
        signature, digest, uri=("#" + element.get("ID")) if uri is None else uri)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    c14n = xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    if prefixes is not None:
        etree.SubElement(c14n, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                         PrefixList=prefixes)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_x509_data(key_info)
    context = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(keys.key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(keys.cert_pem, xmlsec.constants.KeyDataFormatPem)
    context.key = key
    xmlsec.tree.add_ids(element, ["ID"])
    context.sign(signature)
    return signature


def resign(root: etree._Element, keys: KeyPair, *, sign_response: bool = True,
           method=RSA_SHA256, digest=SHA256) -> etree._Element:
    """Sign the assertion, then (optionally) the Response around it, as an IdP does."""
    sign(assertion(root), keys, method=method, digest=digest)
    if sign_response:
        sign(root, keys, method=method, digest=digest)
    else:
        strip_signature(root)
    return root


def reissue(template: etree._Element, keys: KeyPair, *, request_id: str | None,
            now: float) -> etree._Element:
    """A fresh response from a pysaml2-made template: new IDs, times and InResponseTo."""
    root = copy.deepcopy(template)
    root.set("ID", new_id())
    root.set("IssueInstant", saml_time(now))
    the_assertion = assertion(root)
    the_assertion.set("ID", new_id())
    the_assertion.set("IssueInstant", saml_time(now))
    for element in (root, *the_assertion.iter(f"{{{SAML}}}SubjectConfirmationData")):
        if request_id is None:
            element.attrib.pop("InResponseTo", None)
        else:
            element.set("InResponseTo", request_id)
    for element in the_assertion.iter(f"{{{SAML}}}Conditions", f"{{{SAML}}}SubjectConfirmationData"):
        if element.get("NotBefore"):
            element.set("NotBefore", saml_time(now - 1))
        element.set("NotOnOrAfter", saml_time(now + 300))
    for element in the_assertion.iter(f"{{{SAML}}}AuthnStatement"):
        element.set("AuthnInstant", saml_time(now))
    return resign(root, keys)
