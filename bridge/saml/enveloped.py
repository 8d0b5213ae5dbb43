"""The one signature shape IdPs send, verified by lxml's canonicalization and cryptography.

Nearly every IdP signs a SAML element the same way: one enveloped signature, its Reference's
transforms exactly enveloped-signature then exclusive c14n, exclusive c14n of SignedInfo, an RSA
or ECDSA method. For that shape this module computes what libxmlsec would (the element without
its signature, canonicalized by libxml2's own exclusive c14n, which libxmlsec calls too; the
digest; the signature over SignedInfo's canonical form) in about half of its CPU: libxmlsec
builds its node sets node by node and reads the document's namespaces for each.

It answers only "verified". Anything it does not handle exactly (another order of transforms, an
element where none is expected, a comment inside a value, a key that is neither RSA nor EC) and
every signature it cannot verify goes to libxmlsec, which decides as it always did
(``verify.verify_signature``): a document this module accepts is one libxmlsec accepts too, and
a document libxmlsec accepts is never refused because of this module (decision 33). It never
changes the tree. One difference is left: libxmlsec canonicalizes within the whole document and
refuses a relative namespace URI anywhere in it, this module looks at the signed element and its
ancestors only. Where the signed element is not the root (an assertion in a Response) the ACS's
second opinion, python3-saml's libxmlsec, still refuses such a document.

Only for a document as our parser (``xml_parser``) made it: nodes another library made (the
assertion xmlsec decrypted) may carry namespace prefixes outside lxml's dictionary, which its
c14n would leave out of an InclusiveNamespaces list; and with ``xml:id`` collected as IDs (lxml's
default parser, not ours) libxmlsec could resolve the Reference to another element. The caller
has run the shape check
(``signature_policy.check_signature``): algorithms and transforms come from the allow-list, the
Reference points at the element carrying the signature, and no ID occurs twice.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from bridge.saml.signature_policy import (
    ENVELOPED,
    EXC_C14N,
    INCLUSIVE_NAMESPACES,
    SHA1_DIGEST,
    SHA1_SIGNATURE,
)

_DS = "{http://www.w3.org/2000/09/xmldsig#}"
_SIGNED_INFO = _DS + "SignedInfo"
_SIGNATURE_VALUE = _DS + "SignatureValue"
_KEY_INFO = _DS + "KeyInfo"
_C14N_METHOD = _DS + "CanonicalizationMethod"
_SIGNATURE_METHOD = _DS + "SignatureMethod"
_REFERENCE = _DS + "Reference"
_TRANSFORMS = _DS + "Transforms"
_TRANSFORM = _DS + "Transform"
_DIGEST_METHOD = _DS + "DigestMethod"
_DIGEST_VALUE = _DS + "DigestValue"

_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
# Signature method -> (key type, hash).
_METHODS: dict[str, tuple[type, type[hashes.HashAlgorithm]]] = {
    _MORE + "rsa-sha256": (rsa.RSAPublicKey, hashes.SHA256),
    _MORE + "rsa-sha384": (rsa.RSAPublicKey, hashes.SHA384),
    _MORE + "rsa-sha512": (rsa.RSAPublicKey, hashes.SHA512),
    _MORE + "ecdsa-sha256": (ec.EllipticCurvePublicKey, hashes.SHA256),
    _MORE + "ecdsa-sha384": (ec.EllipticCurvePublicKey, hashes.SHA384),
    _MORE + "ecdsa-sha512": (ec.EllipticCurvePublicKey, hashes.SHA512),
}
_DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    _MORE + "sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}

# Real messages have a handful in scope; more are left to libxmlsec (see ``verifies``).
_MAX_IN_SCOPE_NAMESPACES = 64

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def verifies(signature: etree._Element, signed: etree._Element, keys: Sequence[PublicKey], *,
             uses_sha1: bool) -> bool:
    """True when ``signature``, an enveloped signature and a child of ``signed``, has the common
    shape and one of ``keys`` verifies it; False for anything else (left to libxmlsec)."""
    if signature.getparent() is not signed:
        return False
    parts = _children(signature)
    if len(parts) not in (2, 3) or parts[0].tag != _SIGNED_INFO or (
            parts[1].tag != _SIGNATURE_VALUE) or (len(parts) == 3 and parts[2].tag != _KEY_INFO):
        return False
    signed_info, signature_value = parts[0], parts[1]
    info = _children(signed_info)
    if [part.tag for part in info] != [_C14N_METHOD, _SIGNATURE_METHOD, _REFERENCE]:
        return False
    c14n_method, signature_method, reference = info
    if _namespaced_attribute(signed_info):
        # libxmlsec reads Algorithm, URI and PrefixList by local name, whatever their namespace.
        return False
    info_prefixes = _exclusive_c14n_prefixes(c14n_method)
    method = _METHODS.get(signature_method.get("Algorithm") or "")
    if uses_sha1 and signature_method.get("Algorithm") == SHA1_SIGNATURE:
        method = (rsa.RSAPublicKey, hashes.SHA1)
    if info_prefixes is None or method is None or _children(signature_method):
        return False
    steps = _children(reference)
    if [part.tag for part in steps] != [_TRANSFORMS, _DIGEST_METHOD, _DIGEST_VALUE]:
        return False
    transforms, digest_method, digest_value = steps
    if reference.get("URI") != "#" + (signed.get("ID") or "\x00"):
        return False
    listed = _children(transforms)
    if len(listed) != 2 or any(t.tag != _TRANSFORM for t in listed) or (
            listed[0].get("Algorithm") != ENVELOPED or _children(listed[0])):
        return False
    reference_prefixes = _exclusive_c14n_prefixes(listed[1])
    digest_name = _DIGESTS.get(digest_method.get("Algorithm") or "")
    if uses_sha1 and digest_method.get("Algorithm") == SHA1_DIGEST:
        digest_name = "sha1"
    if reference_prefixes is None or digest_name is None or _children(digest_method):
        return False
    expected_digest = _base64_value(digest_value)
    signature_bytes = _base64_value(signature_value)
    if expected_digest is None or signature_bytes is None:
        return False

    # lxml canonicalizes an element below the root on a copy of it that carries every namespace
    # its ancestors declare, and checks each declaration against the ones copied before: work
    # that grows with the square of their number. SignedInfo, the deepest element canonicalized,
    # lies at most four levels down in any shape checked, so its in-scope namespaces bound them.
    if len(signed_info.nsmap) > _MAX_IN_SCOPE_NAMESPACES:
        return False
    try:
        content = _canonical_without(signed, signature, reference_prefixes)
        if content is None or hashlib.new(digest_name, content).digest() != expected_digest:
            return False
        signed_bytes = etree.tostring(signed_info, method="c14n", exclusive=True,
                                      with_comments=False, inclusive_ns_prefixes=info_prefixes)
    except etree.LxmlError:  # libxml2's c14n refuses, e.g., a relative namespace URI
        return False
    key_type, hash_type = method
    return any(isinstance(key, key_type) and _signature_holds(key, signature_bytes, signed_bytes,
                                                              hash_type())
               for key in keys)


_namespaced_attribute = etree.XPath("boolean(descendant-or-self::*/@*[namespace-uri() != ''])")


def _children(element: etree._Element) -> list[etree._Element]:
    """The element children, skipping comments and processing instructions (as libxmlsec does);
    text between them is whitespace or part of what the signature covers."""
    return list(element.iterchildren(etree.Element))


def _exclusive_c14n_prefixes(method: etree._Element) -> list[str] | None:
    """The InclusiveNamespaces PrefixList of an exclusive c14n method, [] without one; None when
    the element is not exactly that."""
    if method.get("Algorithm") != EXC_C14N:
        return None
    parameters = _children(method)
    if not parameters:
        return []
    if len(parameters) != 1 or parameters[0].tag != INCLUSIVE_NAMESPACES or _children(
            parameters[0]):
        return None
    # Split at spaces alone, as libxmlsec does. lxml passes libxml2 only the prefixes its
    # dictionary holds, and the default namespace ("#default", or the empty name between two
    # spaces) is none of them.
    text = parameters[0].get("PrefixList") or ""
    prefixes = text.split(" ") if text else []
    return None if "#default" in prefixes or "" in prefixes else prefixes


def _base64_value(element: etree._Element) -> bytes | None:
    """The base64 content of an element of text alone, line breaks and spaces allowed; None for
    anything else (a comment or element inside, a character outside base64, bad padding)."""
    if len(element):
        return None
    try:
        text = (element.text or "").replace("\n", "").replace("\r", "").replace(" ", "")
        binary = text.replace("\t", "").encode("ascii")
        return binascii.a2b_base64(binary, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _canonical_without(signed: etree._Element, signature: etree._Element,
                       prefixes: list[str]) -> bytes | None:
    """``signed`` without ``signature``, in exclusive c14n without comments: the enveloped
    transform then c14n; None when that cannot be told here. The tree is not touched (taking an
    element out and back in makes lxml rewrite its namespace declarations): ``signed`` is
    canonicalized whole and the signature's own bytes are cut out. Exclusive c14n renders an
    element from its ancestors alone, so what remains is what the node set without the signature
    gives. In canonical form a start tag's ``<`` occurs nowhere else (text and attribute values
    have it escaped, comments are left out, processing instructions are refused below)."""
    if next(signed.iter(etree.ProcessingInstruction), None) is not None:
        return None
    whole = etree.tostring(signed, method="c14n", exclusive=True, with_comments=False,
                           inclusive_ns_prefixes=prefixes)
    prefix = signature.prefix
    # Elements printed with the signature's name before it: those with its local name and prefix.
    before = 0
    for element in signed.iter("{*}Signature"):
        if element is signature:
            break
        before += element.prefix == prefix
    tags = _tag_pattern(f"{prefix}:Signature" if prefix else "Signature")
    depth, start = 0, -1
    for match in tags.finditer(whole):
        opening = match.group(1) is None
        if start < 0:
            if opening:
                if before == 0:
                    start, depth = match.start(), 1
                before -= 1
            continue
        depth += 1 if opening else -1
        if depth == 0:
            return whole[:start] + whole[match.end():]
    return None


_tag_patterns: dict[str, re.Pattern[bytes]] = {}


def _tag_pattern(name: str) -> re.Pattern[bytes]:
    """Start and end tags of ``name`` in canonical form (group 1 set for an end tag)."""
    pattern = _tag_patterns.get(name)
    if pattern is None:
        escaped = re.escape(name.encode())
        pattern = re.compile(b"<(/)?" + escaped + b"[ >]")
        if len(_tag_patterns) < 64:
            _tag_patterns[name] = pattern
    return pattern


def _signature_holds(key: PublicKey, signature: bytes, data: bytes,
                     hash_algorithm: hashes.HashAlgorithm) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
            return True
        # XML-DSig's ECDSA value is r then s, each as long as the curve's order (RFC 6931).
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_algorithm))
        return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False


__all__ = ["PublicKey", "verifies"]
