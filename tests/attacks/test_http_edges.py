"""Bytes a real HTTP client can send that the framework hands over in unexpected shapes: each is
a 4xx with a stable code, never a 500."""

from __future__ import annotations

import pytest

from tests.helpers import Browser


@pytest.mark.parametrize("path", ["/token", "/revoke", "/logout", "/introspect"])
def test_an_authorization_header_that_is_not_ascii_is_an_invalid_client(browser: Browser,
                                                                         path: str) -> None:
    response = browser.client.post(path, data={"grant_type": "refresh_token", "token": "x",
                                               "refresh_token": "x"},
                                   headers={"Authorization": "Basic \u00e9"})
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_client"


def test_a_logout_query_with_raw_bytes_is_malformed(browser: Browser) -> None:
    # As a server that passes the request line's bytes through hands it over (WSGI: latin-1).
    raw = ("SAMLRequest=\u00c3\u00a9&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more"
           "%23rsa-sha256&Signature=AAAA")
    response = browser.client.get("/saml/dev/slo", headers={"Accept": "application/json"},
                                  environ_overrides={"QUERY_STRING": raw})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == "saml_malformed"


@pytest.mark.parametrize("path", ["/authorize", "/saml/dev/slo", "/saml/dev/logout"])
def test_a_query_with_bytes_that_are_not_utf8_is_refused(browser: Browser, path: str) -> None:
    """A raw 0xE9 (a Latin-1 "é" sent unescaped): werkzeug's request.args decodes strict UTF-8,
    so the first view to read a parameter answered 500."""
    response = browser.client.get(path, headers={"Accept": "application/json"},
                                  environ_overrides={"QUERY_STRING": "state=\u00e9&SAMLRequest=x"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == "value_invalid"
