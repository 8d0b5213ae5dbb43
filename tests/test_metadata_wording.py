"""Metadata refusals in an admin's words, as the admin API and pages show them: no internal
version in the location, "metadata" rather than "SAML message", a cut-off document explained, and
an HTML page recognized as such before the XML rules speak."""

from __future__ import annotations

import io
import json

import pytest
from flask.testing import FlaskClient

from bridge.admin.access import AdminAccess
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services


@pytest.fixture
def post_idp(client: FlaskClient, bridge: Services):  # type: ignore[no-untyped-def]
    token = AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("tests", expires_in=3600,
                                                              actor="test")[1]

    def post(document: bytes) -> list[str]:
        response = client.post("/admin/api/idps", headers={"Authorization": f"Bearer {token}"},
                               data={"slug": "corp", "settings": json.dumps({}),
                                     "metadata": (io.BytesIO(document), "corp.xml")},
                               content_type="multipart/form-data")
        assert response.status_code == 422, response.get_data(as_text=True)
        body = response.get_json()
        assert client.get("/admin/api/idps/corp",
                          headers={"Authorization": f"Bearer {token}"}).status_code == 404
        return list(body["problems"])
    return post


def test_a_refusal_names_the_metadata_without_an_internal_version(
        post_idp, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    without_sso = session_other_idp.metadata_xml().replace(b"SingleSignOnService",
                                                           b"ArtifactResolutionService")
    problems = post_idp(without_sso)
    assert problems and all(p.startswith("metadata: ") for p in problems), problems
    assert not any("version None" in p or "IdP corp" in p for p in problems)


def test_truncated_metadata_is_explained_in_plain_words(
        post_idp, session_other_idp: DevIdp) -> None:  # type: ignore[no-untyped-def]
    whole = session_other_idp.metadata_xml()
    cut = whole[:whole.index(b'Binding="') + 12]  # stops inside an attribute value, as reported
    [problem] = post_idp(cut)
    assert problem == (f"metadata: The metadata is not well-formed XML: it ends in the middle, "
                       f"after {len(cut)} bytes, so it was cut off (an incomplete download or "
                       "copy). Get the whole document again.")
    assert "SAML message" not in problem and "AttValue" not in problem


def test_malformed_metadata_says_metadata_and_where(post_idp) -> None:  # type: ignore[no-untyped-def]
    [problem] = post_idp(b"<md:EntityDescriptor xmlns:md='urn:x'><a></b></md:EntityDescriptor>")
    assert problem.startswith("metadata: The metadata is not well-formed XML (")
    assert "line 1" in problem and "SAML message" not in problem and "<string>" not in problem


@pytest.mark.parametrize("page", [
    b"<!DOCTYPE html>\n<html lang='en'><head><title>Sign in</title></head><body></body></html>",
    b"\xef\xbb\xbf  <!doctype HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">\n<html><body>x</body></html>",
    b"<?xml version='1.0'?><!-- portal --><html xmlns='http://www.w3.org/1999/xhtml'></html>",
    b"<html><head></head><body>Download metadata</body></html>",
])
def test_an_html_page_is_recognized_before_the_dtd_rule(post_idp, page: bytes) -> None:  # type: ignore[no-untyped-def]
    [problem] = post_idp(page)
    assert problem.startswith("metadata: this is an HTML page, not SAML metadata")
    assert "DTD" not in problem


def test_a_dtd_in_xml_that_is_no_html_page_is_still_refused_as_such(post_idp) -> None:  # type: ignore[no-untyped-def]
    [problem] = post_idp(b'<?xml version="1.0"?><!DOCTYPE md [<!ENTITY x SYSTEM '
                         b'"file:///etc/passwd">]><md:EntityDescriptor/>')
    assert problem == "metadata: DTDs and entity declarations are not allowed."


def test_saml_messages_keep_their_own_wording() -> None:
    from bridge.errors import SamlRejected
    from bridge.saml.xml_parser import parse_untrusted

    with pytest.raises(SamlRejected) as caught:
        parse_untrusted(b"<samlp:Response ID='", max_bytes=10_000)
    assert caught.value.code == "saml_malformed"
    assert caught.value.public_detail.startswith(
        "The SAML message is not well-formed XML: it ends in the middle")
