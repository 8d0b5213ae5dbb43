"""``xml_parser.check_nodes``, the parser's refusals of markup a SAML message never needs, at its
edges: the depth limit exactly, each forbidden kind of node wherever it sits, and XInclude by
its namespace only."""

from __future__ import annotations

import pytest
from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml.xml_parser import MAX_DEPTH, check_nodes


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
