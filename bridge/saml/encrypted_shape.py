"""The one shape of ``EncryptedAssertion`` we hand to xmlsec, checked before xmlsec sees it.

XML Encryption lets the sender point the decryptor anywhere: ``CipherReference`` (with
``Transforms``) instead of inline ciphertext, ``RetrievalMethod`` to fetch a key, ``KeyInfo``
children that make a library parse or look things up. Our encryption certificate is public, so
anyone can send us any of these without logging in. We accept exactly the plain form every IdP
sends, and refuse everything else with one code (``saml_encryption_structure``):

    EncryptedAssertion            (SAML Core §2.2.4)
      EncryptedData               Id/Type/MimeType/Encoding attributes only
        EncryptionMethod          an allow-listed content algorithm, no children
        KeyInfo                   exactly one EncryptedKey (or a same-document RetrievalMethod to a
                                  peer EncryptedKey, which we resolve ourselves)
        CipherData/CipherValue    base64 text
      EncryptedKey*               peers (SAML Core §2.2.4 allows the key beside the data)

    EncryptedKey
      EncryptionMethod            an allow-listed key transport; DigestMethod, MGF, OAEPparams
      KeyInfo?                    KeyName or X509Data naming our certificate: dropped, we try
                                  each of our keys anyway
      CipherData/CipherValue      base64 text
      ReferenceList?, CarriedKeyName?   same-document references only: dropped

What remains after the check is the normalised tree: one EncryptedData whose KeyInfo holds one
EncryptedKey, and nothing that names a URI.
"""

from __future__ import annotations

import re

from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml import ns
from bridge.saml.ns import q

XENC11 = "http://www.w3.org/2009/xmlenc11#"

CONTENT_ALGORITHMS = frozenset({
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
})
KEY_TRANSPORT_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
})
# Parameters of RSA-OAEP (XML Encryption 1.1 §5.5.2): the digest and the mask generation function.
_OAEP_DIGESTS = frozenset({
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
})
_OAEP_MGFS = frozenset({
    "http://www.w3.org/2009/xmlenc11#mgf1sha1",
    "http://www.w3.org/2009/xmlenc11#mgf1sha224",
    "http://www.w3.org/2009/xmlenc11#mgf1sha256",
    "http://www.w3.org/2009/xmlenc11#mgf1sha384",
    "http://www.w3.org/2009/xmlenc11#mgf1sha512",
})
_ENCRYPTED_KEY_TYPE = "http://www.w3.org/2001/04/xmlenc#EncryptedKey"
ELEMENT_TYPE = "http://www.w3.org/2001/04/xmlenc#Element"
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")

_ENCRYPTED_DATA = q(ns.XENC, "EncryptedData")
_ENCRYPTED_KEY = q(ns.XENC, "EncryptedKey")
_METHOD = q(ns.XENC, "EncryptionMethod")
_CIPHER_DATA = q(ns.XENC, "CipherData")
_CIPHER_VALUE = q(ns.XENC, "CipherValue")
_KEY_INFO = q(ns.DS, "KeyInfo")
_RETRIEVAL = q(ns.DS, "RetrievalMethod")
_X509_LEAVES = frozenset({q(ns.DS, "X509Certificate"), q(ns.DS, "X509SubjectName"),
                          q(ns.DS, "X509SKI")})
_ENCRYPTED_TYPE_ATTRIBUTES = frozenset({"Id", "Type", "MimeType", "Encoding"})


def refused(reason: str, **detail: object) -> SamlRejected:
    return SamlRejected("saml_encryption_structure",
                        "The encrypted assertion has a form this bridge does not accept.",
                        log_detail={"reason": reason, **detail})


def algorithm_refused(what: str, algorithm: str | None) -> SamlRejected:
    return SamlRejected("saml_encryption_algorithm",
                        f"The {what} is encrypted with an algorithm we do not accept.",
                        log_detail={"algorithm": algorithm})


def normalise_encrypted_assertion(encrypted: etree._Element) -> etree._Element:
    """Check ``encrypted`` (a saml:EncryptedAssertion) against the one accepted shape, normalise
    it in place, and return its EncryptedData (whose KeyInfo then holds exactly one EncryptedKey).
    Raise ``SamlRejected`` on anything else."""
    _no_attributes(encrypted, "EncryptedAssertion")
    _no_text(encrypted, "EncryptedAssertion")
    data: list[etree._Element] = []
    peers: list[etree._Element] = []
    for child in encrypted:
        if child.tag == _ENCRYPTED_DATA:
            data.append(child)
        elif child.tag == _ENCRYPTED_KEY:
            peers.append(child)
        else:
            raise refused("unexpected child of EncryptedAssertion", element=_name(child))
    if len(data) != 1:
        raise refused("expected one EncryptedData", found=len(data))
    encrypted_data = data[0]
    for peer in peers:
        _check_encrypted_key(peer)

    _only_attributes(encrypted_data, _ENCRYPTED_TYPE_ATTRIBUTES, "EncryptedData")
    if encrypted_data.get("Type") not in (None, ELEMENT_TYPE):
        raise refused("EncryptedData must encrypt an element", type=encrypted_data.get("Type"))
    method, key_info, cipher_data = _children(encrypted_data, (_METHOD, _KEY_INFO, _CIPHER_DATA),
                                              "EncryptedData")
    algorithm = method.get("Algorithm")
    if algorithm not in CONTENT_ALGORITHMS:
        raise algorithm_refused("assertion", algorithm)
    _leaf(method, "EncryptionMethod", text=False, attributes=frozenset({"Algorithm"}))
    _check_cipher_data(cipher_data)

    _no_attributes(key_info, "KeyInfo", allowed=frozenset({"Id"}))
    _no_text(key_info, "KeyInfo")
    entries = list(key_info)
    if len(entries) != 1:
        raise refused("the KeyInfo of EncryptedData must hold exactly one key",
                      found=[_name(e) for e in entries])
    entry = entries[0]
    if entry.tag == _RETRIEVAL:
        entry = _resolve_peer(entry, peers)
        key_info.replace(key_info[0], entry)
    elif entry.tag == _ENCRYPTED_KEY:
        _check_encrypted_key(entry)
    else:
        raise refused("unexpected child of KeyInfo", element=_name(entry))
    # Peers not referenced are for other recipients: never handed to xmlsec.
    for peer in peers:
        if peer.getparent() is encrypted:
            encrypted.remove(peer)
    _strip_for_decryption(entry)
    return encrypted_data


def _resolve_peer(retrieval: etree._Element, peers: list[etree._Element]) -> etree._Element:
    # A same-document reference (XML-DSig §4.5.3) resolved here, so xmlsec never follows a URI.
    _only_attributes(retrieval, frozenset({"URI", "Type"}), "RetrievalMethod")
    if len(retrieval) or (retrieval.text or "").strip():
        raise refused("RetrievalMethod may not carry Transforms or content")
    uri = retrieval.get("URI") or ""
    if retrieval.get("Type") not in (None, _ENCRYPTED_KEY_TYPE):
        raise refused("RetrievalMethod must name an EncryptedKey", type=retrieval.get("Type"))
    if not uri.startswith("#") or len(uri) < 2:
        raise refused("RetrievalMethod must be a same-document reference", uri=uri[:200])
    targets = [p for p in peers if p.get("Id") == uri[1:]]
    if len(targets) != 1:
        raise refused("RetrievalMethod names no EncryptedKey beside the EncryptedData",
                      uri=uri[:200])
    return targets[0]


def _check_encrypted_key(key: etree._Element) -> None:
    _only_attributes(key, _ENCRYPTED_TYPE_ATTRIBUTES | {"Recipient"}, "EncryptedKey")
    _no_text(key, "EncryptedKey")
    allowed = (_METHOD, _KEY_INFO, _CIPHER_DATA, q(ns.XENC, "ReferenceList"),
               q(ns.XENC, "CarriedKeyName"))
    seen: list[str] = []
    parts: dict[str, etree._Element] = {}
    for child in key:
        if child.tag not in allowed or child.tag in seen:
            raise refused("unexpected child of EncryptedKey", element=_name(child))
        if seen and allowed.index(child.tag) < allowed.index(seen[-1]):
            raise refused("EncryptedKey children out of order", element=_name(child))
        seen.append(child.tag)
        parts[child.tag] = child
    if _METHOD not in parts or _CIPHER_DATA not in parts:
        raise refused("EncryptedKey needs EncryptionMethod and CipherData")
    method = parts[_METHOD]
    algorithm = method.get("Algorithm")
    if algorithm not in KEY_TRANSPORT_ALGORITHMS:
        raise algorithm_refused("assertion's key", algorithm)
    _check_oaep_parameters(method)
    _check_cipher_data(parts[_CIPHER_DATA])
    key_info = parts.get(_KEY_INFO)
    if key_info is not None:
        _check_recipient_hint(key_info)
    references = parts.get(q(ns.XENC, "ReferenceList"))
    if references is not None:
        _no_text(references, "ReferenceList")
        for reference in references:
            if reference.tag not in (q(ns.XENC, "DataReference"), q(ns.XENC, "KeyReference")):
                raise refused("unexpected child of ReferenceList", element=_name(reference))
            _only_attributes(reference, frozenset({"URI"}), "DataReference")
            if len(reference) or not (reference.get("URI") or "").startswith("#"):
                raise refused("ReferenceList entries must be bare same-document references",
                              uri=(reference.get("URI") or "")[:200])
    carried = parts.get(q(ns.XENC, "CarriedKeyName"))
    if carried is not None:
        _leaf(carried, "CarriedKeyName", text=True)


def _check_oaep_parameters(method: etree._Element) -> None:
    _only_attributes(method, frozenset({"Algorithm"}), "EncryptionMethod")
    _no_text(method, "EncryptionMethod")
    for child in method:
        if child.tag == q(ns.DS, "DigestMethod"):
            if child.get("Algorithm") not in _OAEP_DIGESTS:
                raise algorithm_refused("assertion's key", child.get("Algorithm"))
            _leaf(child, "DigestMethod", text=False, attributes=frozenset({"Algorithm"}))
        elif child.tag == q(XENC11, "MGF"):
            if child.get("Algorithm") not in _OAEP_MGFS:
                raise algorithm_refused("assertion's key", child.get("Algorithm"))
            _leaf(child, "MGF", text=False, attributes=frozenset({"Algorithm"}))
        elif child.tag == q(ns.XENC, "OAEPparams"):
            _leaf(child, "OAEPparams", text=True, attributes=frozenset())
            if not _BASE64.fullmatch(child.text or ""):
                raise refused("OAEPparams is not base64")
        else:
            raise refused("unexpected parameter of the key transport", element=_name(child))


def _check_recipient_hint(key_info: etree._Element) -> None:
    """KeyName or X509Data that tell which of our certificates was used; nothing that makes a
    library fetch, parse or look anything up."""
    _no_attributes(key_info, "KeyInfo", allowed=frozenset({"Id"}))
    _no_text(key_info, "KeyInfo")
    for child in key_info:
        if child.tag == q(ns.DS, "KeyName"):
            _leaf(child, "KeyName", text=True)
        elif child.tag == q(ns.DS, "X509Data"):
            _no_attributes(child, "X509Data")
            _no_text(child, "X509Data")
            for item in child:
                if item.tag in _X509_LEAVES:
                    _leaf(item, _name(item), text=True)
                elif item.tag == q(ns.DS, "X509IssuerSerial"):
                    _no_attributes(item, "X509IssuerSerial")
                    _no_text(item, "X509IssuerSerial")
                    for part in item:
                        if part.tag not in (q(ns.DS, "X509IssuerName"), q(ns.DS, "X509SerialNumber")):
                            raise refused("unexpected child of X509IssuerSerial", element=_name(part))
                        _leaf(part, _name(part), text=True)
                else:
                    raise refused("unexpected child of X509Data", element=_name(item))
        else:
            raise refused("unexpected child of the EncryptedKey's KeyInfo", element=_name(child))


def _strip_for_decryption(key: etree._Element) -> None:
    """Leave only EncryptionMethod and CipherData: we try each of our keys ourselves, so xmlsec
    needs no hint and gets nothing to interpret."""
    for child in list(key):
        if child.tag not in (_METHOD, _CIPHER_DATA):
            key.remove(child)


def _check_cipher_data(cipher_data: etree._Element) -> None:
    _no_attributes(cipher_data, "CipherData")
    _no_text(cipher_data, "CipherData")
    children = list(cipher_data)
    if len(children) != 1 or children[0].tag != _CIPHER_VALUE:
        # CipherReference (a URI to read the ciphertext from) is the main thing refused here.
        raise refused("CipherData must hold exactly one CipherValue",
                      found=[_name(c) for c in children])
    value = children[0]
    _leaf(value, "CipherValue", text=True)
    if not _BASE64.fullmatch(value.text or ""):
        raise refused("CipherValue is not base64")


def _children(parent: etree._Element, expected: tuple[str, ...], what: str) -> list[etree._Element]:
    children = list(parent)
    if [c.tag for c in children] != list(expected):
        raise refused(f"{what} must contain exactly {', '.join(map(_local, expected))}",
                      found=[_name(c) for c in children])
    _no_text(parent, what)
    return children


def _leaf(element: etree._Element, what: str, *, text: bool,
          attributes: frozenset[str] | None = None) -> None:
    if len(element):
        raise refused(f"{what} may not have child elements")
    if not text and (element.text or "").strip():
        raise refused(f"{what} may not have text")
    _only_attributes(element, attributes or frozenset(), what)


def _no_text(element: etree._Element, what: str) -> None:
    if (element.text or "").strip() or any((c.tail or "").strip() for c in element):
        raise refused(f"{what} may not have text between its elements")


def _no_attributes(element: etree._Element, what: str,
                   allowed: frozenset[str] = frozenset()) -> None:
    _only_attributes(element, allowed, what)


def _only_attributes(element: etree._Element, allowed: frozenset[str], what: str) -> None:
    extra = [name for name in element.attrib if name not in allowed]
    if extra:
        raise refused(f"unexpected attribute on {what}", attributes=[str(a)[:100] for a in extra])


def _name(element: etree._Element) -> str:
    return str(element.tag)[:200]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
