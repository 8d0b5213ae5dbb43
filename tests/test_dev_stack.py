"""README command 1, for real: ``scripts/dev`` starts the development IdP, the bridge and the
demo app; a scripted browser signs in over real HTTP and the demo shows a verified token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import jwt
import pytest
import requests

from bridge.claims.schemas import validate_payload
from tests.dev_stack import dev_stack

pytestmark = pytest.mark.slow  # every test here starts processes


@pytest.fixture(name="dev_stack")
def dev_stack_fixture(tmp_path: Path) -> Iterator[dict[str, str]]:
    with dev_stack(tmp_path) as urls:
        yield urls


def test_a_person_signs_in_through_the_demo(dev_stack: dict[str, str]) -> None:
    browser = requests.Session()
    home = browser.get(dev_stack["demo"] + "/")
    assert 'id="sign-in"' in home.text

    # Demo -> bridge /authorize -> development IdP login form.
    form_page = browser.get(dev_stack["demo"] + "/login")
    assert form_page.url.startswith(dev_stack["idp"] + "/sso/redirect")
    ticket = re.search(r'name="ticket" value="([^"]+)"', form_page.text).group(1)  # type: ignore[union-attr]

    # Sign in: the IdP answers with an auto-posting form aimed at the bridge's ACS.
    posted = browser.post(dev_stack["idp"] + "/login",
                          data={"ticket": ticket, "username": "alice", "password": "alice"})
    assert posted.status_code == 200
    action = unescape(re.search(r'action="([^"]+)"', posted.text).group(1))  # type: ignore[union-attr]
    assert action == dev_stack["bridge"] + "/saml/dev/acs"
    saml_response = re.search(r'name="SAMLResponse" value="([^"]+)"', posted.text).group(1)  # type: ignore[union-attr]

    # The browser submits it; the bridge redirects to the demo, which exchanges the code.
    landed = browser.post(action, data={"SAMLResponse": saml_response})
    assert landed.status_code == 200, landed.text
    assert landed.url == dev_stack["demo"] + "/"
    assert 'id="signed-in"' in landed.text
    assert "alice@example.com" in landed.text

    token = re.search(r'word-break:break-all">([^<]+)</pre>', landed.text).group(1)  # type: ignore[union-attr]
    key = jwt.PyJWKClient(dev_stack["bridge"] + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="demo-api",
                        issuer=dev_stack["bridge"])
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    validate_payload(claims)
    assert claims["groups"] == ["engineering", "bridge-admins"]

    # The same response posted again is refused: nothing new is issued.
    replay = browser.post(action, data={"SAMLResponse": saml_response},
                          headers={"Accept": "application/json"}, allow_redirects=False)
    assert replay.status_code == 400
    assert replay.json()["code"] == "saml_replay"
