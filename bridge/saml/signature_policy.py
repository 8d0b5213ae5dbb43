"""Shape and algorithm checks that run *before* any cryptography.

XML signature wrapping works by making the verifier check one element while the application reads
another. We refuse every shape in which that could happen before xmlsec sees the document:

* exactly one assertion in the whole document, a direct child of the Response;
* signatures only as direct children of the Response or of that assertion, one each;
* each signature has exactly one Reference whose URI is ``#`` + its parent's ID (an empty URI
  would sign the whole document, not the element we read);
* every ID in the document is unique, so an ID can only ever resolve to one element;
* no ``ds:Object`` (a place to hide a second copy of signed content);
* algorithms and transforms from an allow-list: enveloped-signature and exclusive c14n only, so no
  XSLT and no XPath transform is ever executed. SHA-1 only where an IdP explicitly accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.assertion_checks import check_id_length
from bridge.saml.ns import q
from bridge.saml.xml_parser import MAX_PREFIX_LENGTH

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

SIGNATURE_METHODS = frozenset({
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
})
DIGEST_METHODS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
})
SHA1_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"

_SIGNATURE = q(ns.DS, "Signature")
_ASSERTION = q(ns.SAML, "Assertion")
_ENCRYPTED_ASSERTION = q(ns.SAML, "EncryptedAssertion")
_RESPONSE = q(ns.SAMLP, "Response")


@dataclass(frozen=True)
class SignedShape:
    """What the shape check established about a Response document."""

    response: etree._Element
    assertion: etree._Element
    response_signature: etree._Element | None
    assertion_signature: etree._Element | None
    uses_sha1: bool


def check_response_shape(root: etree._Element, *, allow_sha1: bool,
                         encrypted: bool = False) -> SignedShape:
    """Check a Response; with ``encrypted`` its one assertion is an EncryptedAssertion (whose own
    signature, if any, is inside the ciphertext and checked after decryption)."""
    if root.tag != _RESPONSE:
        raise SamlRejected("saml_malformed", "The message is not a SAML Response.",
                           log_detail={"root": str(root.tag)})
    if root.get("Version") != "2.0" or not root.get("ID"):
        raise SamlRejected("saml_malformed", "The Response lacks Version=\"2.0\" or an ID.")

    check_unique_ids(root)

    assertions = list(root.iter(_ASSERTION))
    encrypted_assertions = list(root.iter(_ENCRYPTED_ASSERTION))
    if encrypted:
        assertions, encrypted_assertions = encrypted_assertions, assertions
    if encrypted_assertions or len(assertions) != 1:
        raise SamlRejected("saml_assertion_count",
                           "The Response must contain exactly one Assertion.",
                           log_detail={"assertions": len(assertions) + len(encrypted_assertions)})
    assertion = assertions[0]
    if assertion.getparent() is not root:
        raise SamlRejected("saml_signature_structure",
                           "The Assertion must be a direct child of the Response.")
    if not encrypted and not assertion.get("ID"):
        raise SamlRejected("saml_malformed", "The Assertion has no ID.")
    if not encrypted:
        check_id_length(assertion, "Assertion")

    response_signature = assertion_signature = None
    uses_sha1 = False
    for signature in root.iter(_SIGNATURE):
        parent = signature.getparent()
        if parent is root and response_signature is None:
            response_signature = signature
        elif parent is assertion and assertion_signature is None and not encrypted:
            assertion_signature = signature
        else:
            raise SamlRejected("saml_signature_structure",
                               "A signature appears where none is allowed.",
                               log_detail={"parent": str(parent.tag) if parent is not None else None})
        uses_sha1 |= check_signature(signature, parent, allow_sha1=allow_sha1)
    return SignedShape(root, assertion, response_signature, assertion_signature, uses_sha1)


# Every ID-like attribute (no namespace) of the element and its descendants, in document order:
# one search in libxml2 instead of three lookups per element in Python.
_ID_VALUES = etree.XPath("descendant-or-self::*/@ID | descendant-or-self::*/@Id"
                         " | descendant-or-self::*/@id", smart_strings=False)


def check_unique_ids(root: etree._Element) -> None:
    """Refuse a document in which two elements carry one ID: a Reference could resolve to
    either."""
    seen: set[str] = set()
    for value in _ID_VALUES(root):
        if value in seen:
            raise SamlRejected("saml_signature_structure",
                               "Two elements share an ID.", log_detail={"id": value})
        seen.add(value)


# Real signatures list a few prefixes (xs, xsi, the protocol's own). Canonicalization looks each
# one up along the ancestors of every element it writes: thousands cost seconds of CPU in a
# message of 50 kB, and sixteen long ones over a hundred thousand elements cost as much.
MAX_INCLUSIVE_PREFIXES = 16
# Elements canonicalized times prefixes listed: a login of 10,000 elements may list two.
MAX_PREFIX_LOOKUPS = 20_000
INCLUSIVE_NAMESPACES = q(EXC_C14N, "InclusiveNamespaces")
_ELEMENTS = etree.XPath("count(descendant-or-self::*)")


def _check_c14n_parameters(method: etree._Element, covered: etree._Element) -> None:
    """An exclusive c14n transform or CanonicalizationMethod, canonicalizing ``covered``, may
    carry an InclusiveNamespaces with a short PrefixList, and nothing else (XPath, XSLT
    stylesheets have no business here)."""
    for child in method:
        if child.tag != INCLUSIVE_NAMESPACES:
            raise SamlRejected("saml_signature_algorithm", "Transforms may not carry parameters.")
        # Split at spaces as libxmlsec does, empty names included (the default namespace).
        listed = (child.get("PrefixList") or "").split(" ")
        if (len(listed) > MAX_INCLUSIVE_PREFIXES
                or any(len(name) > MAX_PREFIX_LENGTH for name in listed)
                or len(listed) * _ELEMENTS(covered) > MAX_PREFIX_LOOKUPS):
            raise SamlRejected("saml_signature_algorithm",
                               f"An InclusiveNamespaces PrefixList may name at most "
                               f"{MAX_INCLUSIVE_PREFIXES} short prefixes, fewer over a large "
                               "document.", log_detail={"prefixes": len(listed)})


def check_signature(signature: etree._Element, parent: etree._Element, *, allow_sha1: bool) -> bool:
    """Refuse anything but one enveloped, exclusively canonicalized reference to ``parent``."""

    def refuse(code: str, detail: str, **log: object) -> SamlRejected:
        return SamlRejected(code, detail, log_detail=dict(log))

    uses_sha1 = False
    if signature.find(q(ns.DS, "Object")) is not None:
        raise refuse("saml_signature_structure", "Signatures may not carry ds:Object.")
    signed_info = signature.findall(q(ns.DS, "SignedInfo"))
    if len(signed_info) != 1:
        raise refuse("saml_signature_structure", "A signature must have one SignedInfo.")
    info = signed_info[0]

    c14n = info.findall(q(ns.DS, "CanonicalizationMethod"))
    if len(c14n) != 1 or c14n[0].get("Algorithm") != EXC_C14N:
        raise refuse("saml_signature_algorithm", "Only exclusive canonicalization is accepted.",
                     algorithm=[c.get("Algorithm") for c in c14n])
    _check_c14n_parameters(c14n[0], info)
    methods = info.findall(q(ns.DS, "SignatureMethod"))
    method = methods[0].get("Algorithm") if len(methods) == 1 else None
    if method == SHA1_SIGNATURE and allow_sha1:
        uses_sha1 = True
    elif method not in SIGNATURE_METHODS:
        raise refuse("saml_signature_algorithm", "The signature algorithm is not accepted.",
                     algorithm=method)

    references = info.findall(q(ns.DS, "Reference"))
    if len(references) != 1:
        raise refuse("saml_signature_structure", "A signature must have exactly one Reference.",
                     references=len(references))
    reference = references[0]
    uri = reference.get("URI")
    if not uri or uri != "#" + (parent.get("ID") or ""):
        # An empty URI means "the whole document": never the element we are about to read.
        raise refuse("saml_signature_structure",
                     "The signature does not reference the element that carries it.",
                     uri=uri, parent_id=parent.get("ID"))

    transforms_el = reference.findall(q(ns.DS, "Transforms"))
    transforms = [t.get("Algorithm") for el in transforms_el for t in el]
    if len(transforms_el) > 1 or ENVELOPED not in transforms or any(
        t not in (ENVELOPED, EXC_C14N) for t in transforms
    ) or len(transforms) != len(set(transforms)):
        raise refuse("saml_signature_algorithm",
                     "Only the enveloped-signature and exclusive c14n transforms are accepted.",
                     transforms=transforms)
    for transform_el in transforms_el:
        for transform in transform_el:
            _check_c14n_parameters(transform, parent)

    digests = reference.findall(q(ns.DS, "DigestMethod"))
    digest = digests[0].get("Algorithm") if len(digests) == 1 else None
    if digest == SHA1_DIGEST and allow_sha1:
        uses_sha1 = True
    elif digest not in DIGEST_METHODS:
        raise refuse("saml_signature_algorithm", "The digest algorithm is not accepted.",
                     algorithm=digest)
    return uses_sha1


def check_assertion_shape(root: etree._Element, *, allow_sha1: bool) -> tuple[etree._Element, bool]:
    """A bare, signed Assertion (RFC 7522): one signature, its direct child, over it; no other
    assertion inside. Returns (signature, uses_sha1)."""
    if root.tag != _ASSERTION or not root.get("ID") or root.get("Version") != "2.0":
        raise SamlRejected("saml_malformed", "The grant's assertion is not a SAML 2.0 Assertion.")
    check_id_length(root, "Assertion")
    check_unique_ids(root)
    if any(True for _ in root.iterdescendants(_ASSERTION, _ENCRYPTED_ASSERTION)):
        raise SamlRejected("saml_assertion_count", "An assertion may not contain another.")
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise SamlRejected("saml_signature_missing", "The assertion is not signed.")
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise SamlRejected("saml_signature_structure", "A signature appears where none is allowed.")
    return signatures[0], check_signature(signatures[0], root, allow_sha1=allow_sha1)
