"""Verify that fetched metadata is signed by the federation or IdP key the admin pinned.

Metadata fetched over the network is only as trustworthy as its signature: TLS says who served
the file, the signature says who wrote it. The shape rules are the ones the ACS applies to
responses: one signature, a direct child of the root, whose one Reference names the root's ID
(never "" for "the whole document"), with allow-listed algorithms and transforms only, checked
before any cryptography; the key is the pinned certificate, never the document's own KeyInfo.
"""

from __future__ import annotations

from cryptography import x509
from lxml import etree

from bridge.errors import ConfigError, SamlRejected
from bridge.saml import ns
from bridge.saml.metadata import MAX_METADATA_BYTES
from bridge.saml.signature_policy import check_signature, check_unique_ids
from bridge.saml.verify import CertificateKeys, verify_signature
from bridge.saml.xml_parser import parse_untrusted

_ROOTS = (ns.q(ns.MD, "EntityDescriptor"), ns.q(ns.MD, "EntitiesDescriptor"))
_SIGNATURE = ns.q(ns.DS, "Signature")


def verify_metadata_signature(xml: bytes, pinned_certificate_pem: str) -> None:
    """Return if ``xml`` carries a valid root signature by ``pinned_certificate_pem``; otherwise
    raise ``ConfigError("metadata signature: ...")``."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"metadata signature: {problem}")

    try:
        x509.load_pem_x509_certificate(pinned_certificate_pem.encode("ascii"))
    except (ValueError, UnicodeError):
        raise fail("the pinned certificate is not a PEM X.509 certificate") from None

    try:
        root = parse_untrusted(xml, max_bytes=MAX_METADATA_BYTES, allow_comments=True,
                               kind="metadata")
        if root.tag not in _ROOTS:
            raise fail(f"the root element must be md:EntityDescriptor or md:EntitiesDescriptor, "
                       f"found {etree.QName(root).localname}")
        if not root.get("ID"):
            raise fail("the root element has no ID attribute, so no signature can refer to it")
        # A duplicate ID could make the Reference resolve to another element than the root.
        check_unique_ids(root)
        signatures = root.findall(_SIGNATURE)
        if not signatures:
            raise fail("the metadata is not signed (no ds:Signature on the root element)")
        if len(signatures) != 1:
            raise fail(f"the root element carries {len(signatures)} signatures; exactly one is "
                       "accepted")
        signature = signatures[0]
        check_signature(signature, root, allow_sha1=False)
        verify_signature(signature, root, CertificateKeys([pinned_certificate_pem]), uses_sha1=False)
    except SamlRejected as exc:
        detail = exc.public_detail
        if exc.code == "saml_signature_invalid":
            detail = "the signature does not verify with the pinned certificate"
        raise fail(f"{detail} ({exc.code})") from None


__all__ = ["verify_metadata_signature"]
