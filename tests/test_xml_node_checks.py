"""``xml_parser.check_nodes``, the parser's refusals of markup a SAML message never needs, at its
edges: the depth limit exactly, each forbidden kind of node wherever it sits, XInclude by its
namespace only, and each bound on what canonicalization would repeat exactly (elements, the
attributes of an element, the namespaces in scope counted down the tree, prefix and name
lengths), read as the parser read the document, whatever its encoding or text; and a whole
document is not called cut off."""

from __future__ import annotations

import pytest
from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml.xml_parser import (
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_NAMESPACE_NAME_LENGTH,
    MAX_NAMESPACED_ATTRIBUTES,
    MAX_NAMESPACES_IN_SCOPE,
    MAX_PREFIX_LENGTH,
    check_nodes,
    parse_untrusted,
)


def _nested(levels: int) -> etree._Element:
    """An element tree ``levels`` deep, the root counted as one."""
    root = holder = etree.Element("{urn:t}root")
    for _ in range(levels - 1):
        holder = etree.SubElement(holder, "{urn:t}nest")
    return root


def _code(root: etree._Element) -> str | None:
    try:
        check_nodes(root)
    except SamlRejected as refusal:
        return refusal.code
    return None


def test_the_depth_limit_exactly() -> None:
    assert _code(_nested(MAX_DEPTH)) is None
    assert _code(_nested(MAX_DEPTH + 1)) == "saml_malformed"
    # Counted from the element checked, not from the document's root.
    inner = _nested(MAX_DEPTH + 1)[0]
    assert _code(inner) is None


@pytest.mark.parametrize("node", [
    etree.Comment("c"), etree.ProcessingInstruction("p", "d"), etree.Entity("evil"),
])
@pytest.mark.parametrize("where", [0, 1, MAX_DEPTH - 2])
def test_each_forbidden_node_anywhere(node: etree._Element, where: int) -> None:
    root = _nested(MAX_DEPTH - 1)
    holder = root
    for _ in range(where):
        holder = holder[0]
    holder.append(node)
    assert _code(root) == "saml_forbidden_xml"


@pytest.mark.parametrize(("namespace", "refused"), [
    ("http://www.w3.org/2001/XInclude", True),
    ("http://www.w3.org/2003/XInclude", True),
    ("http://www.w3.org/2001/XIncludes", False),
    ("urn:other", False),
])
def test_xinclude_by_its_namespace(namespace: str, refused: bool) -> None:
    root = _nested(5)
    root[0][0].append(etree.Element(f"{{{namespace}}}include", href="file:///etc/passwd"))
    assert _code(root) == ("saml_forbidden_xml" if refused else None)


def _declarations(count: int, name: str = "n") -> str:
    return "".join(f' xmlns:{name}{i}="urn:{name}:{i}"' for i in range(count))


def _parsed_code(data: bytes) -> str | None:
    try:
        parse_untrusted(data, max_bytes=len(data))
    except SamlRejected as refusal:
        return refusal.code
    return None


@pytest.mark.parametrize("default", [False, True])
def test_the_namespaces_in_scope_exactly(default: bool) -> None:
    """A default namespace declaration counts as one like any other."""
    extra = ' xmlns="urn:default"' if default else ""
    at_limit = MAX_NAMESPACES_IN_SCOPE - default
    assert _parsed_code(f"<r{extra}{_declarations(at_limit)}/>".encode()) is None
    assert _parsed_code(f"<r{extra}{_declarations(at_limit + 1)}/>".encode()) == "saml_malformed"


def test_namespaces_are_counted_where_they_are_in_scope_not_in_all() -> None:
    # Declared again on every one of many siblings (as IdPs do for xs and xsi on attribute
    # values): hundreds of declarations, two in scope anywhere.
    siblings = "".join(f"<v{_declarations(2)}>{i}</v>" for i in range(300)).encode()
    assert _parsed_code(b"<r>" + siblings + b"</r>") is None
    # Down one path, each element within the limit and their sum over it.
    half = MAX_NAMESPACES_IN_SCOPE // 2 + 1
    nested = f"<r{_declarations(half, 'a')}><c{_declarations(half, 'b')}/></r>".encode()
    assert _parsed_code(nested) == "saml_malformed"
    # The same declarations on siblings: in scope one element at a time.
    apart = f"<r><c{_declarations(half, 'a')}/><c{_declarations(half, 'b')}/></r>".encode()
    assert _parsed_code(apart) is None


def test_a_tree_without_bytes_counts_what_its_ancestors_declare() -> None:
    """A decrypted assertion is a tree xmlsec made inside the message: the namespaces its
    ancestors declare are in scope in it as well."""
    outer = etree.fromstring(f"<r{_declarations(MAX_NAMESPACES_IN_SCOPE)}><c/></r>".encode())
    assert _code(outer[0]) is None
    etree.SubElement(outer[0], "{urn:one-more}x")
    assert _code(outer[0]) == "saml_malformed"


def _written_as(encoding: str, declarations: int) -> bytes:
    """A document in ``encoding``, declared where the encoding needs it, with ``declarations``
    namespace declarations on its root. UTF-7 may spell any character in base64, ``xmlns``
    included, and does here."""
    if encoding == "utf-7":
        names = "".join(f' +AHgAbQBsAG4Acw-:n{i}="urn:n:{i}"' for i in range(declarations))
        return f'<?xml version="1.0" encoding="UTF-7"?><r{names}/>'.encode("ascii")
    declared = {"utf-16": "", "utf-32": "", "utf-16-le": "UTF-16", "latin-1": "ISO-8859-1"}[
        encoding]
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    return f"{head}<r{_declarations(declarations)}/>".encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "latin-1", "utf-7"])
def test_the_namespaces_are_counted_in_any_encoding_the_parser_reads(encoding: str) -> None:
    """In these the bytes need not spell xmlns in ASCII; what the parser read is counted."""
    assert _parsed_code(_written_as(encoding, 3)) is None
    refused = _written_as(encoding, MAX_NAMESPACES_IN_SCOPE + 1)
    with pytest.raises(SamlRejected, match="namespaces"):
        parse_untrusted(refused, max_bytes=len(refused))


@pytest.mark.parametrize("where", [0, 1, MAX_DEPTH - 2])
def test_the_attributes_of_an_element_exactly(where: int) -> None:
    """Namespace declarations are no attributes; any element counts, the checked one included."""
    root = _nested(MAX_DEPTH - 1)
    holder = root
    for _ in range(where):
        holder = holder[0]
    for i in range(MAX_ATTRIBUTES):
        holder.set(f"{{urn:a}}a{i}" if i < MAX_NAMESPACED_ATTRIBUTES else f"a{i}", "v")
    assert _code(root) is None
    holder.set("one-more", "v")
    assert _code(root) == "saml_malformed"
    assert _code(holder) == "saml_malformed"
    if len(holder):
        assert _code(holder[0]) is None  # below it: not in what is checked


def test_the_attributes_in_a_namespace_exactly() -> None:
    root = _nested(3)
    for i in range(MAX_NAMESPACED_ATTRIBUTES):
        root[0].set(f"{{urn:ns{i}}}a", "v")
    assert _code(root) is None
    root[0].set("{urn:one-more}a", "v")
    assert _code(root) == "saml_malformed"


def test_the_elements_exactly() -> None:
    at_limit = b"<r>" + b"<e/>" * (MAX_ELEMENTS - 1) + b"</r>"
    assert _parsed_code(at_limit) is None
    assert _parsed_code(b"<r>" + b"<e/>" * MAX_ELEMENTS + b"</r>") == "saml_malformed"


@pytest.mark.parametrize("declarations", [1, MAX_NAMESPACES_IN_SCOPE + 1])  # read both ways
@pytest.mark.parametrize("written", ["prefix", "name", "default name"])
def test_namespace_prefixes_and_names_exactly(declarations: int, written: str) -> None:
    """Canonicalization compares prefixes along the ancestors of every element, and writes a
    name again on every element that uses it: both are bounded, however many are declared."""
    def document(extra: int) -> bytes:
        prefix, name = "p" * MAX_PREFIX_LENGTH, "urn:" + "n" * (MAX_NAMESPACE_NAME_LENGTH - 4)
        if written == "prefix":
            prefix += "p" * extra
        else:
            name += "n" * extra
        declared = (f' xmlns="{name}"' if written == "default name"
                    else f' xmlns:{prefix}="{name}"')
        # Many more declarations, each on an element of its own: never many in scope.
        siblings = "".join(f'<s xmlns:o="urn:o:{i}"/>' for i in range(declarations))
        return f"<r{declared}>{siblings}</r>".encode()

    assert _parsed_code(document(0)) is None
    assert _parsed_code(document(1)) == "saml_malformed"


def test_a_declaration_is_read_as_the_parser_reads_it() -> None:
    """Not as text that looks like one: an attribute value holding ``xmlns='`` once hid from a
    pattern over the bytes the long name that follows it."""
    name = "urn:a'" + "n" * MAX_NAMESPACE_NAME_LENGTH
    hidden = f"""<r b="xmlns='" xmlns:p="{name}" c="'"><p:x/></r>""".encode()
    assert _parsed_code(hidden) == "saml_malformed"
    prefix = "p" * (MAX_PREFIX_LENGTH + 1)
    hidden = f"""<r b="xmlns='" xmlns:{prefix}="urn:a'" c="'"><{prefix}:x/></r>""".encode()
    assert _parsed_code(hidden) == "saml_malformed"


@pytest.mark.parametrize("whole", [b'<r xmlns:p=""/>', b'<r xmlns:xmlns="urn:x"/>',
                                   b"<r><p:x/></r>"])
def test_a_whole_document_with_a_namespace_error_is_not_called_cut_off(whole: bytes) -> None:
    with pytest.raises(SamlRejected) as refused:
        parse_untrusted(whole, max_bytes=len(whole))
    assert refused.value.code == "saml_malformed"
    assert "cut off" not in str(refused.value)
    cut = b"<r><a>text"
    with pytest.raises(SamlRejected, match="cut off"):
        parse_untrusted(cut, max_bytes=len(cut))
