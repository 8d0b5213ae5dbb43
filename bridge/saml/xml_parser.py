"""The one way the bridge turns untrusted bytes into an XML tree.

No DTD (so no entities, internal or external, and no billion laughs), no network, no XInclude
processing, a size limit before parsing, and limits after it on what canonicalization, which
every signature check runs, would repeat: depth, elements, the attributes of an element, the
namespaces in scope at an element, and the length of prefixes and namespace names. Within a
message's size limit, any of these unbounded cost seconds of CPU per check
(docs/decisions/0036-bounds-on-what-canonicalization-reads.md).

Comments and processing instructions carry no meaning in SAML protocol messages, but exclusive
canonicalization ignores them when digesting, which is what the comment-injection attack exploits
(``admin@corp<!---->.evil`` verifies as signed, and a naive reader sees only ``admin@corp``). In
messages they are therefore refused outright; in metadata documents, where tools do write comments,
they are dropped at parse time so text reads whole. CDATA sections are merged into the text.
"""

from __future__ import annotations

from lxml import etree

from bridge.errors import SamlRejected, TooLarge

MAX_DEPTH = 64
# Real messages and metadata have a handful of namespaces in scope, twenty at most.
MAX_NAMESPACES_IN_SCOPE = 64
# And a handful of attributes on an element: canonicalization sorts them, in time that grows with
# the square of their number.
MAX_ATTRIBUTES = 64
# Of which few in a namespace (xsi:type, xml:lang): canonicalization sorts those by namespace
# name first, comparing names of up to MAX_NAMESPACE_NAME_LENGTH for every pair.
MAX_NAMESPACED_ATTRIBUTES = 4
# Short prefixes and names: exclusive canonicalization compares prefixes along every element's
# ancestors, and writes a name again on every element that uses it (a 64 kB name on 4,000
# elements made 256 MB of output).
MAX_PREFIX_LENGTH = 16
MAX_NAMESPACE_NAME_LENGTH = 128
# Every signature check canonicalizes each element at least once: a bound on the work of one
# check whatever else the message holds. A response of 512 kB with ten thousand attribute values
# has about twenty thousand.
MAX_ELEMENTS = 50_000


def _parser(*, drop_comments: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=drop_comments,
        remove_pis=drop_comments,
        strip_cdata=True,
        collect_ids=False,
    )


_MESSAGE_PARSER = _parser(drop_comments=False)
_DOCUMENT_PARSER = _parser(drop_comments=True)


def parse_untrusted(data: bytes, *, max_bytes: int, allow_comments: bool = False,
                    kind: str = "SAML message") -> etree._Element:
    """Parse ``data`` or raise ``SamlRejected`` with a stable code.

    ``allow_comments`` drops comments and processing instructions instead of refusing them; use it
    only for documents such as metadata, never for protocol messages. ``kind`` names the document
    in the refusals ("SAML message", "metadata"), so an admin reads about what they gave us.
    """
    if len(data) > max_bytes:
        raise TooLarge(
            "saml_too_large",
            f"The {kind} is larger than this bridge accepts.",
            log_detail={"bytes": len(data), "limit": max_bytes},
        )
    # A DOCTYPE is never legitimate in SAML protocol messages (SAML Core §1.3; the schema has
    # none). Refuse it outright rather than trusting parser flags to neuter what it declares.
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise SamlRejected("saml_forbidden_xml", "DTDs and entity declarations are not allowed.")
    try:
        root = etree.fromstring(data, parser=_DOCUMENT_PARSER if allow_comments else _MESSAGE_PARSER)
    except etree.XMLSyntaxError as exc:
        if _cut_off(data):
            raise SamlRejected(
                "saml_malformed",
                f"The {kind} is not well-formed XML: it ends in the middle, after {len(data)} "
                "bytes, so it was cut off (an incomplete download or copy). Get the whole "
                "document again.",
            ) from None
        raise SamlRejected(
            "saml_malformed", f"The {kind} is not well-formed XML.",
            log_detail={"parser": str(exc).removesuffix(" (<string>, line 1)")[:200]},
        ) from None
    if root is None:
        raise SamlRejected("saml_malformed", f"The {kind} is empty.")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise SamlRejected("saml_forbidden_xml", "DTDs are not allowed.")
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        raise _refuse_node(sibling)
    check_nodes(root, kind=kind)
    return root


_NAMESPACE_ERRORS = 200  # XML_NS_ERR_XML_NAMESPACE, the first of libxml2's namespace errors


def _cut_off(data: bytes) -> bool:
    """True if ``data`` is a sound beginning of an XML document that stops before its end: fed
    to a push parser, nothing is wrong until the parser is told there is no more."""
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True,
                             huge_tree=False)
    try:
        parser.feed(data)
    except etree.XMLSyntaxError:
        return False
    try:
        parser.close()
    except etree.XMLSyntaxError as error:
        # The push parser reports namespace errors (libxml2's codes from 200) only at the end,
        # in whole documents too: those are not cut off.
        return bool(data.strip()) and error.code < _NAMESPACE_ERRORS
    return False


_XINCLUDE = ("{http://www.w3.org/2001/XInclude}*", "{http://www.w3.org/2003/XInclude}*")
# True when some element lies more than MAX_DEPTH levels down, counting the root as one.
_TOO_DEEP = etree.XPath("boolean(" + "/".join(["*"] * MAX_DEPTH) + ")")
# True when some element has more than MAX_ATTRIBUTES (asked for the next one: a count would
# count every element's attributes).
_TOO_MANY_ATTRIBUTES = etree.XPath(f"boolean(descendant-or-self::*/@*[{MAX_ATTRIBUTES + 1}])")
_TOO_MANY_ELEMENTS = etree.XPath(f"boolean((descendant-or-self::*)[{MAX_ELEMENTS + 1}])")
_TOO_MANY_NAMESPACED_ATTRIBUTES = etree.XPath(
    f"boolean(descendant-or-self::*/@*[namespace-uri() != ''][{MAX_NAMESPACED_ATTRIBUTES + 1}])")


def check_nodes(root: etree._Element, *, kind: str = "SAML message") -> None:
    """Refuse comments, PIs, entity references, deep nesting, XInclude, too many elements, too
    many attributes on an element, and namespace declarations past their bounds under ``root``.
    Each is one search in libxml2 or one walk in lxml's C code (a walk of every node in Python
    cost ten times as much); node kinds and namespaces are matched by type and by string, so the
    nodes xmlsec made in a decrypted assertion are checked as well as parsed ones."""
    for node in root.iter(etree.Comment, etree.ProcessingInstruction, etree.Entity):
        raise _refuse_node(node)
    if _TOO_DEEP(root):
        # libxml2 already stops at 256 levels; SAML needs well under 20.
        raise SamlRejected("saml_malformed", f"The {kind} is nested too deeply.",
                           log_detail={"limit": MAX_DEPTH})
    for _ in root.iter(*_XINCLUDE):
        raise SamlRejected("saml_forbidden_xml", "XInclude is not allowed.")
    if _TOO_MANY_ATTRIBUTES(root) or _TOO_MANY_NAMESPACED_ATTRIBUTES(root):
        raise SamlRejected("saml_malformed", f"An element of the {kind} has too many attributes.",
                           log_detail={"limits": [MAX_ATTRIBUTES, MAX_NAMESPACED_ATTRIBUTES]})
    if _TOO_MANY_ELEMENTS(root):
        raise SamlRejected("saml_malformed", f"The {kind} has too many elements.",
                           log_detail={"limit": MAX_ELEMENTS})
    # A subtree (the assertion xmlsec decrypted into a message) is read on its own, serialized
    # with the declarations of its ancestors, which are in scope in it.
    whole = root if root.getparent() is None else etree.fromstring(etree.tostring(root),
                                                                   parser=_MESSAGE_PARSER)
    problem = _namespace_problem(whole)
    if problem is not None:
        raise SamlRejected("saml_malformed", f"The {kind} {problem}.",
                           log_detail={"limits": [MAX_NAMESPACES_IN_SCOPE, MAX_PREFIX_LENGTH,
                                                  MAX_NAMESPACE_NAME_LENGTH]})


def _namespace_problem(root: etree._Element) -> str | None:
    """What is wrong with the namespace declarations under ``root`` as the parser read them
    (whatever the encoding of the bytes): more than MAX_NAMESPACES_IN_SCOPE in scope at an
    element (a prefix declared again below counts twice), or a prefix or name longer than the
    limits; None when nothing is. One walk of the tree, told each element's own declarations."""
    in_scope = 0
    for event, declared in etree.iterwalk(root, events=("start-ns", "end-ns")):
        if event == "end-ns":
            in_scope -= 1
            continue
        in_scope += 1
        if in_scope > MAX_NAMESPACES_IN_SCOPE:
            return "declares too many XML namespaces"
        prefix, name = declared
        if len(prefix) > MAX_PREFIX_LENGTH or len(name.encode()) > MAX_NAMESPACE_NAME_LENGTH:
            return "declares an XML namespace prefix or name longer than this bridge accepts"
    return None


def _refuse_node(node: etree._Element) -> SamlRejected:
    if isinstance(node, etree._Comment):
        return SamlRejected("saml_forbidden_xml", "XML comments are not allowed in SAML messages.")
    if isinstance(node, etree._ProcessingInstruction):
        return SamlRejected("saml_forbidden_xml",
                            "Processing instructions are not allowed in SAML messages.")
    # Unresolved entity references survive as nodes of their own.
    return SamlRejected("saml_forbidden_xml", "Entity references are not allowed.")
