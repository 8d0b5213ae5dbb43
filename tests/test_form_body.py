"""The OAuth endpoints' form as the views read it: parsed in one step, it must give what
werkzeug's form parser gives for any body a client can post."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from flask import Flask, request
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.web.form_body import form_fields, posted_form

FORM = "application/x-www-form-urlencoded"
# What a form body is made of: its separators, escapes whole, cut short or invalid, bytes that
# are not UTF-8 once unescaped, and text beside them.
_PIECES = st.sampled_from(["&", "=", "+", "%", "%2", "%20", "%26", "%3D", "%2B", "%25", "%zz",
                           "%C3%A9", "%C3", "%FF", "%ED%A0%80", "%00", ";", "a", "grant_type",
                           "refresh_token", "é", "\ud800", " ", "==", "&&"])


def _werkzeug_reads(body: bytes, content_type: str = FORM) -> dict[str, str]:
    app = Flask(__name__)
    with app.test_request_context("/token", method="POST", data=body,
                                  content_type=content_type):
        return request.form.to_dict()


def _posted(body: bytes, content_type: str = FORM) -> dict[str, str]:
    app = Flask(__name__)
    with app.test_request_context("/token", method="POST", data=body,
                                  content_type=content_type):
        return posted_form()


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES | st.text(max_size=4), max_size=16).map("".join))
def test_any_body_gives_the_fields_werkzeug_gives(text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    assert _posted(body) == _werkzeug_reads(body)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=24), max_size=5))
def test_an_encoded_form_comes_back_as_it_was_sent(fields: dict[str, str]) -> None:
    for encode in (quote, quote_plus):
        body = "&".join(f"{encode(k, safe='')}={encode(v, safe='')}" for k, v in fields.items())
        assert form_fields(body) == fields == _werkzeug_reads(body.encode())


def test_a_refresh_body_is_read_field_by_field() -> None:
    body = b"grant_type=refresh_token&refresh_token=abc%2Bdef+ghi&client_id=demo&client_id=x"
    assert _posted(body) == {"grant_type": "refresh_token", "refresh_token": "abc+def ghi",
                             "client_id": "demo"} == _werkzeug_reads(body)


def test_a_body_that_is_not_utf8_is_no_form_as_for_werkzeug() -> None:
    body = b"grant_type=refresh_token&x=\xff"
    assert _posted(body) == {} == _werkzeug_reads(body)


def test_other_content_types_go_through_werkzeug() -> None:
    body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n"
    content_type = "multipart/form-data; boundary=b"
    assert _posted(body, content_type) == {"a": "1"} == _werkzeug_reads(body, content_type)
