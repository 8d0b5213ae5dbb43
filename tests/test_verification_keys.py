"""The keys both validators verify IdP signatures with are the certificates' bare public keys
(``verify.verification_key``): they must accept and refuse exactly what the certificates
themselves do, for RSA and EC keys, expired certificates included (a key set on the signature
context is used as it is; the certificate's dates are the metadata's business). A key that is
not plain RSA or EC keeps its certificate's restrictions: an RSA-PSS key verifies no PKCS#1
v1.5 signature, at the ACS or in a redirect-bound logout request. A certificate xmlsec cannot
load (Ed25519) beside the IdP's usable one does not stop its logins."""

from __future__ import annotations

import base64
import datetime
import subprocess
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from lxml import etree

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.saml.logout import _verifies as redirect_signature_verifies
from bridge.saml.verify import verification_key
from bridge.store.db import Database
from tests.conftest import make_settings, test_sp_metadata
from tests.helpers import Browser

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


# --- certificates whose keys are not plain RSA or EC ---------------------------------------------


@pytest.fixture(scope="module")
def pss_idp_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An IdP certificate for an RSA-PSS key (made by OpenSSL; RFC 4055 limits the key to
    PSS), and the same key as a plain RSA key, which the IdP signs its XML with (rsa-sha256,
    PKCS#1 v1.5) all the same."""
    directory = tmp_path_factory.mktemp("pss-idp-keys")
    for command in (["genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", str(directory / "pss.key")],
                    ["req", "-x509", "-new", "-key", str(directory / "pss.key"), "-subj",
                     "/CN=pss-idp", "-days", "30", "-out", str(directory / "idp.crt")]):
        subprocess.run(["openssl", *command], check=True, capture_output=True)
    key = serialization.load_pem_private_key((directory / "pss.key").read_bytes(), None)
    (directory / "idp.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return directory


def _ed25519_certificate() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ed25519")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=30)).sign(key, None)
            .public_bytes(serialization.Encoding.DER))


def _add_signing_certificate(metadata: Path, der: bytes, *, first: bool) -> None:
    md, ds = "urn:oasis:names:tc:SAML:2.0:metadata", "http://www.w3.org/2000/09/xmldsig#"
    root = etree.fromstring(metadata.read_bytes())
    existing = root.find(f"{{{md}}}IDPSSODescriptor/{{{md}}}KeyDescriptor")
    assert existing is not None
    descriptor = etree.Element(f"{{{md}}}KeyDescriptor", use="signing")
    data = etree.SubElement(etree.SubElement(descriptor, f"{{{ds}}}KeyInfo"), f"{{{ds}}}X509Data")
    etree.SubElement(data, f"{{{ds}}}X509Certificate").text = base64.b64encode(der).decode()
    if first:
        existing.addprevious(descriptor)
    else:
        existing.addnext(descriptor)
    metadata.write_bytes(etree.tostring(root))


@pytest.fixture
def dev_idp(request: pytest.FixtureRequest, session_dev_idp: DevIdp, idp_dir: Path,
            tmp_path: Path) -> DevIdp:
    """The IdP registered as ``dev``: the usual one, with an Ed25519 certificate added first or
    last (``ed25519 first``, ``ed25519 last``), or one whose certificate holds an RSA-PSS key
    (``pss``)."""
    kind = getattr(request, "param", "usual")
    if kind == "pss":
        idp = DevIdp(base_url="https://idp.example.org",
                     state_dir=request.getfixturevalue("pss_idp_keys"),
                     sp_metadata=test_sp_metadata)
        idp.write_metadata(idp_dir)
        return idp
    metadata = session_dev_idp.write_metadata(idp_dir)
    if kind.startswith("ed25519"):
        _add_signing_certificate(metadata, _ed25519_certificate(), first=kind.endswith("first"))
    return session_dev_idp


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    """The bridge reads ``idp_dir`` once ``dev_idp`` has written its metadata there."""
    return make_settings(database, idp_dir, tmp_path)


@pytest.mark.parametrize("dev_idp", ["pss"], indirect=True)
def test_an_rsa_pss_certificate_verifies_no_pkcs1_signature_at_the_acs(browser: Browser) -> None:
    login = browser.start()
    response = browser.post_acs(browser.signed_response(login))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == "saml_signature_invalid"
    assert browser.issued_nothing()


@pytest.mark.parametrize("dev_idp", ["ed25519 first", "ed25519 last"], indirect=True)
def test_a_certificate_xmlsec_cannot_load_leaves_the_idps_other_one_verifying(
        browser: Browser) -> None:
    code, login = browser.login()
    assert browser.exchange(code, login.verifier).status_code == 200


def test_an_rsa_pss_certificate_verifies_no_pkcs1_redirect_signature(pss_idp_keys: Path) -> None:
    """HTTP-Redirect logout requests are verified by cryptography, which reads an RSA-PSS key
    as any RSA key: the certificate's key algorithm decides."""
    key = serialization.load_pem_private_key((pss_idp_keys / "idp.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    data = b"SAMLRequest=...&SigAlg=..."
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    plain_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "plain")])
    plain = (x509.CertificateBuilder().subject_name(plain_name).issuer_name(plain_name)
             .public_key(key.public_key()).serial_number(1)
             .not_valid_before(NOW - datetime.timedelta(days=1))
             .not_valid_after(NOW + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    plain_pem = plain.public_bytes(serialization.Encoding.PEM).decode()
    # The same key in a plain RSA certificate verifies it.
    assert redirect_signature_verifies(plain_pem, "rsa", hashes.SHA256(), signature, data)
    pss_pem = (pss_idp_keys / "idp.crt").read_text()
    assert not redirect_signature_verifies(pss_pem, "rsa", hashes.SHA256(), signature, data)
