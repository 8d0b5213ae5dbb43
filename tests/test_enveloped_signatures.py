"""The common signature shape is verified without libxmlsec (``saml/enveloped.py``); libxmlsec is
the oracle. Documents are signed by python-xmlsec (and pysaml2's IdP), never by the code under
test. For every document here: whatever ``enveloped.verifies`` accepts, libxmlsec accepts with
the same keys and allow-list; the signatures IdPs send are accepted by it (not handed on); a
change to what is signed is refused by both; and the tree is left exactly as it was."""

from __future__ import annotations

import base64
import datetime as dt
import random
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from bridge.dev.saml_idp import USERS, DevIdp
from bridge.errors import SamlRejected
from bridge.saml import enveloped
from bridge.saml.signature_policy import check_signature
from bridge.saml.verify import CertificateKeys, verify_signature, verify_with_xmlsec
from tests.attacks import xml_tools as x
from tests.conftest import BRIDGE_URL

DS = "{http://www.w3.org/2000/09/xmldsig#}"
EXC = "{http://www.w3.org/2001/10/xml-exc-c14n#}"
C = xmlsec.constants


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "idp.example.org")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


_KEYS: dict[str, tuple[bytes, bytes]] = {}


def _keypair(kind: str) -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) of ``kind``: rsa, rsa3072, p256, p384, p521."""
    if kind not in _KEYS:
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if kind.startswith("rsa"):
            private = rsa.generate_private_key(public_exponent=65537,
                                               key_size=int(kind[3:] or 2048))
        else:
            private = ec.generate_private_key({"p256": ec.SECP256R1(), "p384": ec.SECP384R1(),
                                               "p521": ec.SECP521R1()}[kind])
        _KEYS[kind] = (private.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
                       _certificate(private))
    return _KEYS[kind]


# As the bridge parses: no xml:id collected as an ID (``xml_parser``).
_PARSER = etree.XMLParser(collect_ids=False, resolve_entities=False)

DOCUMENT = b"""<root xmlns="urn:default" xmlns:xs="http://www.w3.org/2001/XMLSchema"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:unused="urn:unused">
  <a:Signed xmlns:a="urn:a" ID="_s1" a:attr="1" xml:lang="en">
    <a:First>one &amp; &lt;two&gt;</a:First>
    <a:Value xsi:type="xs:string">typed</a:Value>
    <Plain>text</Plain>
  </a:Signed>
</root>"""


def _sign(document: bytes = DOCUMENT, *, kind: str = "rsa", method: int = C.TransformRsaSha256,
          digest: int = C.TransformSha256, position: int = 0,
          transforms: tuple[int, ...] = (C.TransformEnveloped, C.TransformExclC14N),
          prefixes: str | None = None, info_prefixes: str | None = None,
          tail: str | None = None, signature_ns: str | None = "ds",
          twin: str | None = None,
          ) -> tuple[etree._Element, etree._Element, etree._Element]:
    """The document with ``a:Signed`` (or the root, if it carries the ID) signed by xmlsec:
    (root, signed element, signature)."""
    root = etree.fromstring(document)
    signed = root if root.get("ID") else root[0]
    signature = xmlsec.template.create(signed, C.TransformExclC14N, method, ns=signature_ns)
    signed.insert(position, signature)
    signature.tail = tail
    reference = xmlsec.template.add_reference(signature, digest, uri="#" + signed.get("ID"))
    for transform in transforms:
        node = xmlsec.template.add_transform(reference, transform)
        if transform == C.TransformExclC14N and prefixes is not None:
            etree.SubElement(node, EXC + "InclusiveNamespaces", PrefixList=prefixes)
    if info_prefixes is not None:
        method_node = signature.find(f"{DS}SignedInfo/{DS}CanonicalizationMethod")
        etree.SubElement(method_node, EXC + "InclusiveNamespaces", PrefixList=info_prefixes)
    if twin is not None:  # a namespaced copy of a SignedInfo attribute, signed with it
        target = {"PrefixList": ".//{*}InclusiveNamespaces", "URI": ".//{*}Reference",
                  "Algorithm": ".//{*}SignatureMethod"}[twin]
        element = next(e for e in signature.iter() if e.tag.endswith(target.split("}")[-1]))
        element.set(f"{{urn:x}}{twin}", "x")
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    private, certificate = _keypair(kind)
    key = xmlsec.Key.from_memory(private, C.KeyDataFormatPem)
    key.load_cert_from_memory(certificate, C.KeyDataFormatPem)
    context = xmlsec.SignatureContext()
    context.key = key
    xmlsec.tree.add_ids(signed, ["ID"])
    context.sign(signature)
    # Parsed again, as everything verified is (lxml finds no element xmlsec's templates made).
    root = etree.fromstring(etree.tostring(root), parser=_PARSER)
    signed = root if root.get("ID") else root[0]
    return root, signed, signed.find(DS + "Signature")


def _keys(*kinds: str) -> CertificateKeys:
    return CertificateKeys([_keypair(kind)[1].decode() for kind in kinds])


def _oracle(signature: etree._Element, signed: etree._Element, keys: CertificateKeys, *,
            uses_sha1: bool = False) -> bool:
    try:
        verify_with_xmlsec(signature, signed, keys, uses_sha1=uses_sha1)
        return True
    except SamlRejected:
        return False


def _verdicts(root: etree._Element, signed: etree._Element, signature: etree._Element,
              keys: CertificateKeys, *, uses_sha1: bool = False) -> tuple[bool, bool]:
    """(ours, libxmlsec's), with the tree unchanged by ours, and ours never the only yes."""
    before = etree.tostring(root)
    ours = enveloped.verifies(signature, signed, keys.public, uses_sha1=uses_sha1)
    assert etree.tostring(root) == before
    theirs = _oracle(signature, signed, keys, uses_sha1=uses_sha1)
    assert theirs or not ours, "accepted a signature libxmlsec refuses"
    return ours, theirs


@pytest.mark.parametrize(("kind", "method", "digest"), [
    ("rsa", C.TransformRsaSha256, C.TransformSha256),
    ("rsa3072", C.TransformRsaSha384, C.TransformSha384),
    ("rsa", C.TransformRsaSha512, C.TransformSha512),
    ("rsa", C.TransformRsaSha256, C.TransformSha512),
    ("p256", C.TransformEcdsaSha256, C.TransformSha256),
    ("p384", C.TransformEcdsaSha384, C.TransformSha384),
    ("p521", C.TransformEcdsaSha512, C.TransformSha512),
])
def test_each_allowed_algorithm_verifies_here(kind: str, method: int, digest: int) -> None:
    root, signed, signature = _sign(kind=kind, method=method, digest=digest)
    check_signature(signature, signed, allow_sha1=False)
    assert _verdicts(root, signed, signature, _keys(kind)) == (True, True)


@pytest.mark.parametrize("position", [0, 1, 2, 3])
@pytest.mark.parametrize("tail", [None, "", "\n    ", "\n"])
def test_where_the_signature_sits_and_the_text_after_it(position: int, tail: str | None) -> None:
    """The enveloped transform removes the element, not the text after it (lxml moves an
    element's tail with it): wherever the signature is, with or without text after it."""
    root, signed, signature = _sign(position=position, tail=tail)
    assert _verdicts(root, signed, signature, _keys("rsa")) == (True, True)


@pytest.mark.parametrize(("prefixes", "info_prefixes"), [
    ("xs", None), ("xs xsi", "xs"), ("xs unused", "a ds"), ("", ""), ("nothere", "nothere"),
])
def test_inclusive_namespaces_declared_on_an_ancestor(prefixes: str,
                                                      info_prefixes: str | None) -> None:
    """Namespaces listed in PrefixList are rendered from the ancestors' declarations (xs and one
    used nowhere are declared on the root only)."""
    root, signed, signature = _sign(prefixes=prefixes, info_prefixes=info_prefixes)
    assert _verdicts(root, signed, signature, _keys("rsa")) == (True, True)
    # Changing an ancestor's declaration of a listed prefix changes what was signed.
    listed = [p for p in prefixes.split() if p in ("xs", "xsi", "unused")]
    if listed:
        changed = etree.tostring(root).replace(
            f'xmlns:{listed[0]}="'.encode(), f'xmlns:{listed[0]}="urn:other#'.encode())
        again = etree.fromstring(changed)
        assert _verdicts(again, again[0], again[0].find(DS + "Signature"),
                         _keys("rsa")) == (False, False)


@pytest.mark.parametrize(("prefixes", "info_prefixes"), [
    ("#default", None), ("xs #default", None), ("xs", "#default"),
])
def test_the_default_namespace_listed_goes_to_libxmlsec(prefixes: str,
                                                        info_prefixes: str | None) -> None:
    """lxml cannot name the default namespace to libxml2's c14n (it passes on only prefixes its
    dictionary holds): such a signature is left to libxmlsec, which accepts it."""
    root, signed, signature = _sign(prefixes=prefixes, info_prefixes=info_prefixes)
    assert _verdicts(root, signed, signature, _keys("rsa")) == (False, True)
    verify_signature(signature, signed, _keys("rsa"), uses_sha1=False)


def test_the_signed_element_as_the_root_with_a_comment_and_instruction_before_it() -> None:
    """Signed metadata: the root carries the signature; what lies outside it is not signed."""
    root, signed, signature = _sign(
        b'<m:Root xmlns:m="urn:m" ID="_r"><m:e>v</m:e><!-- note --></m:Root>', position=1)
    tree = etree.fromstring(b"<?pi data?><!-- before --><m:Root xmlns:m='urn:m'/>").getroottree()
    text = etree.tostring(tree).replace(b"<m:Root xmlns:m='urn:m'/>", b"").replace(
        b'<m:Root xmlns:m="urn:m"/>', b"") + etree.tostring(root)
    parsed = etree.fromstring(text)
    assert parsed.getprevious() is not None  # the comment and instruction are there
    assert _verdicts(parsed, parsed, parsed.find(DS + "Signature"), _keys("rsa")) == (True, True)


def test_comments_in_the_signed_content_are_not_signed() -> None:
    root, signed, signature = _sign(tail="\n")
    signed[2].addprevious(etree.Comment(" added "))
    signature.addnext(etree.Comment(" after the signature "))
    signed[-1].text = "te"
    signed[-1].append(etree.Comment("x"))
    signed[-1][0].tail = "xt"
    assert _verdicts(root, signed, signature, _keys("rsa")) == (True, True)


def _pysaml2_response(idp: DevIdp) -> str:
    return idp.response_for(None, USERS["alice"], acs_url=f"{BRIDGE_URL}/saml/dev/acs",
                            sp_entity_id=f"{BRIDGE_URL}/saml/metadata")


def test_a_pysaml2_response_verifies_here(session_dev_idp: DevIdp, idp_key_dir: Path) -> None:
    root = x.decode(_pysaml2_response(session_dev_idp))
    keys = CertificateKeys([x.load_keypair(idp_key_dir).cert_pem.decode()])
    assertion = x.assertion(root)
    for signed in (root, assertion):
        signature = signed.find(DS + "Signature")
        assert _verdicts(root, signed, signature, keys) == (True, True)


def test_sha1_only_where_the_idp_accepts_it() -> None:
    root, signed, signature = _sign(method=C.TransformRsaSha1, digest=C.TransformSha1)
    assert _verdicts(root, signed, signature, _keys("rsa"), uses_sha1=True) == (True, True)
    assert _verdicts(root, signed, signature, _keys("rsa"), uses_sha1=False) == (False, False)
    root, signed, signature = _sign(digest=C.TransformSha1)  # RSA-SHA256 over a SHA-1 digest
    assert _verdicts(root, signed, signature, _keys("rsa"), uses_sha1=False) == (False, False)


def test_the_right_key_among_several_and_no_key_of_another_kind() -> None:
    root, signed, signature = _sign(kind="p256", method=C.TransformEcdsaSha256)
    assert _verdicts(root, signed, signature, _keys("rsa", "p384", "p256")) == (True, True)
    assert _verdicts(root, signed, signature, _keys("rsa", "p384")) == (False, False)
    root, signed, signature = _sign()
    assert _verdicts(root, signed, signature, _keys("rsa3072", "p256")) == (False, False)


def _tampered(change: str) -> tuple[etree._Element, etree._Element, etree._Element]:
    root, signed, signature = _sign(tail="\n    ")
    value = signature.find(DS + "SignatureValue")
    digest_value = signature.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue")
    if change == "text":
        signed[1].text = "one & <tw0>"
    elif change == "attribute":
        signed.set("{urn:a}attr", "2")
    elif change == "added attribute":
        signed[2].set("extra", "")
    elif change == "text after the signature":
        signature.tail = "\n    injected"
    elif change == "element after the signature":
        signature.addnext(etree.Element("{urn:a}Injected"))
    elif change == "element inside the signature's SignedInfo":
        signature[0].append(etree.Element(DS + "Reference", URI="#_s1"))
    elif change == "digest value":
        raw = bytearray(base64.b64decode(digest_value.text))
        raw[0] ^= 1
        digest_value.text = base64.b64encode(bytes(raw)).decode()
    elif change == "signature value":
        raw = bytearray(base64.b64decode(value.text))
        raw[-1] ^= 1
        value.text = base64.b64encode(bytes(raw)).decode()
    elif change == "signature value with a character outside base64":
        value.text = value.text[:10] + "!" + value.text[10:]
    elif change == "signature value truncated":
        value.text = base64.b64encode(base64.b64decode(value.text)[:-1]).decode()
    elif change == "comment inside the digest value":
        digest_value.text = digest_value.text[:5]
        digest_value.append(etree.Comment("c"))
        digest_value[0].tail = ""
    elif change == "reference to another ID":
        signature.find(f"{DS}SignedInfo/{DS}Reference").set("URI", "#_other")
    elif change == "signature moved to the root":
        root.insert(0, signature)
    else:
        raise AssertionError(change)
    return root, signed, signature


@pytest.mark.parametrize("change", [
    "text", "attribute", "added attribute", "text after the signature",
    "element after the signature", "element inside the signature's SignedInfo", "digest value",
    "signature value", "signature value with a character outside base64",
    "signature value truncated", "comment inside the digest value", "reference to another ID",
    "signature moved to the root",
])
def test_a_change_is_never_accepted_here(change: str) -> None:
    root, signed, signature = _tampered(change)
    ours, _ = _verdicts(root, signed, signature, _keys("rsa"))
    assert ours is False


def test_an_ecdsa_value_of_another_length_is_left_to_libxmlsec() -> None:
    root, signed, signature = _sign(kind="p256", method=C.TransformEcdsaSha256)
    value = signature.find(DS + "SignatureValue")
    raw = base64.b64decode(value.text)
    value.text = base64.b64encode(b"\x00" + raw[:32] + b"\x00" + raw[32:]).decode()
    ours, _ = _verdicts(root, signed, signature, _keys("p256"))
    assert ours is False


def test_another_transform_list_goes_to_libxmlsec_which_decides() -> None:
    # Enveloped alone: the node set is then canonicalized by inclusive c14n.
    root, signed, signature = _sign(transforms=(C.TransformEnveloped,))
    check_signature(signature, signed, allow_sha1=False)
    ours, theirs = _verdicts(root, signed, signature, _keys("rsa"))
    assert ours is False
    try:
        verify_signature(signature, signed, _keys("rsa"), uses_sha1=False)
        accepted = True
    except SamlRejected:
        accepted = False
    assert accepted == theirs


def test_random_changes_give_libxmlsecs_verdict(session_dev_idp: DevIdp,
                                                idp_key_dir: Path) -> None:
    """One character or space added, removed or changed anywhere in a pysaml2 response's text:
    both verifiers give the same verdict on each signature, and each verdict occurs."""
    original = base64.b64decode(_pysaml2_response(session_dev_idp))
    keys = CertificateKeys([x.load_keypair(idp_key_dir).cert_pem.decode()])
    chance = random.Random(20261203)
    seen: set[bool] = set()
    tried = 0
    while tried < 300:
        text = bytearray(original)
        at = chance.randrange(len(text))
        if chance.random() < 0.5:
            text[at:at + 1] = b""
        else:
            text[at:at] = chance.choice([b" ", b"\n", b"a", b"0", b"=", b"Z"])
        try:
            root = etree.fromstring(bytes(text))
        except etree.XMLSyntaxError:
            continue
        tried += 1
        for signature in root.iter(DS + "Signature"):
            signed = signature.getparent()
            if not signed.get("ID") or len(list(root.iter(DS + "Signature"))) != 2:
                continue
            try:
                check_signature(signature, signed, allow_sha1=False)
            except SamlRejected:
                continue
            ours, theirs = _verdicts(root, signed, signature, keys)
            if ours != theirs:
                # A value libxmlsec reads leniently may be refused here; nothing else may differ.
                value = signature.find(DS + "SignatureValue").text or ""
                digest = signature.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text
                assert not _base64_clean(value) or not _base64_clean(digest or ""), (
                    f"verdicts differ after a change at byte {at}: ours {ours}, xmlsec {theirs}")
            seen.add(theirs)
    assert seen == {True, False}


def _base64_clean(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
        return True
    except ValueError:
        return False


DSIG = "http://www.w3.org/2000/09/xmldsig#"


@pytest.mark.parametrize("prefix", ["ds", "x", None])
def test_the_signature_namespace_declared_on_an_ancestor_too(prefix: str | None) -> None:
    """An ancestor declaring the signature namespace (as ``ds``), the signature declaring it
    again under its own prefix or as the default: the tree stays as it was (taking the signature
    out and back in once made lxml rewrite its declarations) and the verdict is libxmlsec's."""
    signed_root, _, _ = _sign(signature_ns=prefix)
    text = etree.tostring(signed_root)
    own = f'<{prefix}:Signature xmlns:{prefix}="{DSIG}"' if prefix else f'<Signature xmlns="{DSIG}"'
    assert own.encode() in text
    root = etree.fromstring(text.replace(b"<root ", f'<root xmlns:ds="{DSIG}" '.encode(), 1),
                            parser=_PARSER)
    signed = root[0]
    signature = signed.find(f"{{{DSIG}}}Signature")
    assert _verdicts(root, signed, signature, _keys("rsa")) == (True, True)
    verify_signature(signature, signed, _keys("rsa"), uses_sha1=False)


def test_the_signature_renamed_under_an_ancestors_prefix_is_refused() -> None:
    """Signed as ``ds:``, received as ``x:`` bound to the same namespace where an ancestor binds
    ``ds``: SignedInfo's canonical form changed, so libxmlsec refuses, and so does this module."""
    document = DOCUMENT.replace(b'<root xmlns="urn:default"',
                                f'<root xmlns:ds="{DSIG}" xmlns="urn:default"'.encode())
    root, signed, signature = _sign(document)
    text = etree.tostring(root)
    start = text.index(b"<ds:Signature")
    end = text.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    renamed = text[start:end].replace(f' xmlns:ds="{DSIG}"'.encode(), b"").replace(
        b"ds:", b"x:").replace(b"<x:Signature", f'<x:Signature xmlns:x="{DSIG}"'.encode(), 1)
    again = etree.fromstring(text[:start] + renamed + text[end:], parser=_PARSER)
    signature = again[0].find(f"{{{DSIG}}}Signature")
    assert signature.prefix == "x"
    assert _verdicts(again, again[0], signature, _keys("rsa")) == (False, False)


@pytest.mark.parametrize("where", ["root", "signed"])
def test_a_relative_namespace_uri_is_a_refusal_not_an_error(where: str) -> None:
    """libxml2's c14n will not canonicalize a relative namespace URI: the signature is refused
    (by libxmlsec, which cannot either), never an exception."""
    root, signed, signature = _sign()
    text = etree.tostring(root)
    old = b"<root " if where == "root" else b"<a:Signed "
    again = etree.fromstring(text.replace(old, old + b'xmlns:rel="relative/uri" ', 1),
                             parser=_PARSER)
    signature = again[0].find(f"{{{DSIG}}}Signature")
    assert _verdicts(again, again[0], signature, _keys("rsa")) == (False, False)
    with pytest.raises(SamlRejected):
        verify_signature(signature, again[0], _keys("rsa"), uses_sha1=False)


def test_many_namespaces_in_scope_go_to_libxmlsec() -> None:
    """lxml's c14n of an element below the root copies every ancestor's declarations, checking
    each against the others: past a few dozen in scope the signature is left to libxmlsec
    (which accepts this valid one)."""
    declarations = " ".join(f'xmlns:n{i}="urn:n:{i}"' for i in range(2000))
    document = DOCUMENT.replace(b"<root ", f"<root {declarations} ".encode())
    root, signed, signature = _sign(document)
    assert _verdicts(root, signed, signature, _keys("rsa")) == (False, True)
    verify_signature(signature, signed, _keys("rsa"), uses_sha1=False)


@pytest.mark.parametrize("separator", ["  ", "\t", "\n", "\u00a0", "\u3000"])
def test_prefix_lists_split_as_libxmlsec_splits_them(separator: str) -> None:
    """Only spaces separate prefixes (as libxmlsec reads them; an empty name between two may
    stand for the default namespace, which is left to libxmlsec): ours is never the only yes,
    and the signature made over the list verifies."""
    glue = separator.encode().decode("unicode_escape")
    root, signed, signature = _sign(prefixes=f"xs{glue}xsi", info_prefixes=f"xs{glue}a")
    assert _verdicts(root, signed, signature, _keys("rsa"))[1] is True
    verify_signature(signature, signed, _keys("rsa"), uses_sha1=False)


def test_an_instruction_in_the_signed_content_goes_to_libxmlsec() -> None:
    """Its data is not escaped in canonical form, so the signature's bytes could not be told
    apart from it: left to libxmlsec (messages refuse instructions; metadata drops them)."""
    root, signed, signature = _sign(tail="\n")
    signed.append(etree.ProcessingInstruction("x", "<ds:Signature>"))
    assert _verdicts(root, signed, signature, _keys("rsa"))[0] is False


@pytest.mark.parametrize("attribute", ["PrefixList", "URI", "Algorithm"])
def test_a_namespaced_twin_of_a_signedinfo_attribute_goes_to_libxmlsec(attribute: str) -> None:
    """libxmlsec reads SignedInfo's attributes by local name whatever their namespace, so a
    namespaced twin placed first could make it read another value than this module does: such a
    signature is libxmlsec's to judge."""
    root, signed, signature = _sign(prefixes="", twin=attribute)
    assert f'{{urn:x}}{attribute}' in {name for e in signature.iter() for name in e.attrib}
    ours, theirs = _verdicts(root, signed, signature, _keys("rsa"))
    assert ours is False
    assert theirs is True  # the plain attribute comes first: libxmlsec reads the signed value
