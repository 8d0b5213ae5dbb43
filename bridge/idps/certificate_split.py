"""Certificate additions apply at once, whatever else the same document changes.

An IdP about to roll over its signing key publishes the next certificate ahead of time; a document
that also changes, say, its SSO URL must not hold that certificate back until a person looks, or
the rollover fails logins. The new certificates are therefore taken out of the proposal and put
into a copy of the document in force, which applies by itself; the proposal as a whole waits.

Nothing else of the proposal reaches the copy: not its endpoints, not its dates, not its removals.
"""

from __future__ import annotations

import base64
import copy
import hashlib

from lxml import etree

from bridge.saml import ns
from bridge.saml.metadata import MAX_METADATA_BYTES, member_entities
from bridge.saml.xml_parser import parse_untrusted

_ENTITY = f"{{{ns.MD}}}EntityDescriptor"
_IDP = f"{{{ns.MD}}}IDPSSODescriptor"
_KEY = f"{{{ns.MD}}}KeyDescriptor"
_CERT = f"{{{ns.DS}}}X509Certificate"
# What may come before KeyDescriptor in an IDPSSODescriptor (SAML Metadata §2.4.1, §2.4.3).
_BEFORE_KEYS = (f"{{{ns.DS}}}Signature", f"{{{ns.MD}}}Extensions")


def with_added_certificates(in_force: bytes, proposed: bytes, added: set[str]) -> bytes:
    """``in_force`` with the signing ``KeyDescriptor``s of ``proposed`` whose certificates'
    SHA-256 fingerprints (hex) are in ``added``. Both documents were accepted before."""
    target = _idp_descriptor(parse_untrusted(in_force, max_bytes=MAX_METADATA_BYTES,
                                             allow_comments=True, kind="metadata"))
    source = _idp_descriptor(parse_untrusted(proposed, max_bytes=MAX_METADATA_BYTES,
                                             allow_comments=True, kind="metadata"))
    keys = [key for key in source.findall(_KEY)
            if key.get("use") in (None, "signing") and _fingerprints(key) & added]
    children = list(target)
    existing = [i for i, child in enumerate(children) if child.tag == _KEY]
    at = (existing[-1] + 1 if existing
          else sum(1 for child in children if child.tag in _BEFORE_KEYS))
    for offset, key in enumerate(keys):
        key_copy = copy.deepcopy(key)
        key_copy.tail = "\n"
        target.insert(at + offset, key_copy)
    return bytes(etree.tostring(target.getroottree(), xml_declaration=True, encoding="UTF-8"))


def _idp_descriptor(root: etree._Element) -> etree._Element:
    # The entity parse_idp_metadata took: a member of the aggregate, never one found elsewhere.
    entity = root if root.tag == _ENTITY else next(
        e for e in member_entities(root) if e.find(_IDP) is not None)
    descriptor = entity.find(_IDP)
    assert descriptor is not None  # both documents were parsed as IdP metadata before
    return descriptor


def _fingerprints(key: etree._Element) -> set[str]:
    found = set()
    for cert in key.iter(_CERT):
        try:
            der = base64.b64decode("".join((cert.text or "").split()), validate=True)
        except ValueError:
            continue
        found.add(hashlib.sha256(der).hexdigest())
    return found
