"""The one way the bridge turns untrusted bytes into an XML tree.

No DTD (so no entities, internal or external, and no billion laughs), no network, no XInclude
processing, a size limit before parsing and a depth limit after. Comments and processing
instructions are dropped at parse time: canonicalization without comments ignores them when
digesting, so a value split by a comment (``admin@corp<!---->.evil``) is read exactly as it was
signed, whole, and never truncated at the comment.
"""

from __future__ import annotations

from lxml import etree

from bridge.errors import SamlRejected

MAX_DEPTH = 64

_PARSER = etree.XMLParser(
    resolve_entities=False,
    load_dtd=False,
    dtd_validation=False,
    no_network=True,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    strip_cdata=True,
    collect_ids=False,
)


def parse_untrusted(data: bytes, *, max_bytes: int) -> etree._Element:
    """Parse ``data`` or raise ``SamlRejected`` with a stable code."""
    if len(data) > max_bytes:
        raise SamlRejected(
            "saml_too_large",
            "The SAML message is larger than this bridge accepts.",
            log_detail={"bytes": len(data), "limit": max_bytes},
        )
    # A DOCTYPE is never legitimate in SAML protocol messages (SAML Core §1.3; the schema has
    # none). Refuse it outright rather than trusting parser flags to neuter what it declares.
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise SamlRejected("saml_forbidden_xml", "DTDs and entity declarations are not allowed.")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise SamlRejected(
            "saml_malformed", "The SAML message is not well-formed XML.",
            log_detail={"parser": str(exc)[:200]},
        ) from None
    if root is None:
        raise SamlRejected("saml_malformed", "The SAML message is empty.")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise SamlRejected("saml_forbidden_xml", "DTDs are not allowed.")
    _check_shape(root)
    return root


_XINCLUDE_NS = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")


def _check_shape(root: etree._Element) -> None:
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth > MAX_DEPTH:
            # libxml2 already stops at 256 levels; SAML needs well under 20.
            raise SamlRejected("saml_malformed", "The SAML message is nested too deeply.",
                               log_detail={"limit": MAX_DEPTH})
        tag = element.tag
        if not isinstance(tag, str):
            # Unresolved entity references survive as nodes of their own.
            raise SamlRejected("saml_forbidden_xml", "Entity references are not allowed.")
        if tag.startswith("{") and tag[1:].split("}", 1)[0] in _XINCLUDE_NS:
            raise SamlRejected("saml_forbidden_xml", "XInclude is not allowed.")
