"""``signature_policy.check_unique_ids``: no two elements of a document may carry one ID under
any of the names a Reference may resolve (ID, Id, id), wherever they sit; namespaced attributes
and other names do not count."""

from __future__ import annotations

import pytest
from lxml import etree

from bridge.errors import SamlRejected
from bridge.saml.signature_policy import check_unique_ids


def _refused(xml: bytes) -> str | None:
    try:
        check_unique_ids(etree.fromstring(xml))
    except SamlRejected as refusal:
        assert refusal.code == "saml_signature_structure"
        return str(refusal.log_detail["id"])
    return None


@pytest.mark.parametrize(("xml", "duplicate"), [
    (b'<r ID="a"><s ID="b"/><t id="c"/><u Id="d"/></r>', None),
    (b'<r ID="a"><s ID="a"/></r>', "a"),
    (b'<r ID="a"><s><t><u Id="a"/></t></s></r>', "a"),
    (b'<r><s id="x"/><t ID="x"/></r>', "x"),
    (b'<r ID="a" id="a"/>', "a"),
    (b'<r xmlns:n="urn:n" ID="a"><s n:ID="a"/><t Ident="a"/><u iD="a"/></r>', None),
    (b'<r ID=""><s ID=""/></r>', ""),
])
def test_duplicates_under_every_name(xml: bytes, duplicate: str | None) -> None:
    assert _refused(xml) == duplicate


def test_only_the_checked_element_and_below() -> None:
    root = etree.fromstring(b'<r ID="a"><s><t ID="b"/></s><u ID="b"/></r>')
    check_unique_ids(root[0])
    with pytest.raises(SamlRejected):
        check_unique_ids(root)
