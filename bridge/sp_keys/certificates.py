"""New SP key pairs with their self-signed certificates, and when a certificate expires."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERTIFICATE_DAYS = 5 * 365
# NIST SP 800-57: 3072-bit RSA for keys used beyond 2030.
RSA_KEY_BITS = 3072


def new_key_pair(common_name: str, now: float, *, days: int = CERTIFICATE_DAYS) -> tuple[str, str]:
    """A new RSA key (PKCS#8 PEM) and its self-signed certificate (PEM). IdPs trust the
    certificate because it is in our metadata, not because of who issued it (SAML Metadata
    Interoperability Profile §2.1): a self-signed one is what every SP publishes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem.decode("ascii"), certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_not_after(certificate_pem: str) -> dt.datetime:
    return x509.load_pem_x509_certificate(certificate_pem.encode("ascii")).not_valid_after_utc
