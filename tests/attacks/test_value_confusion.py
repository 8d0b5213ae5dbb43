"""Values that differ only by surrounding whitespace are different values.

An IdP that lets users choose their own names or groups (self-service groups, usernames) could
otherwise hand out " ceo" and " bridge-admins ", which a reader that trims would take for "ceo"
and "bridge-admins". Subjects, groups and every other value are read exactly as signed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jwt
import pytest

from bridge.config import Settings
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.store.db import Database
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

WEB2 = {"client_id": "web2", "redirect_uris": ["https://web2.example.com/cb"],
        "audience": "https://api.example.com", "claims_version": 2, "public": True}
MAPPING = """display_name = "Development IdP"
[[mapping.roles]]
exact = "bridge-admins"
role = "admin"
"""


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    (idp_dir / "dev.toml").write_text(MAPPING)
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, WEB2])


def _access_token(browser: Browser, user: object) -> dict:
    login = browser.start(client_id="web2", redirect_uri=WEB2["redirect_uris"][0],
                          scope="openid groups")
    saml_response = browser.idp.response_for(login.pending, user)  # type: ignore[arg-type]
    code = browser.code_from(browser.post_acs(saml_response), login)
    response = browser.exchange(code, login.verifier, client_id="web2",
                                redirect_uri=WEB2["redirect_uris"][0])
    assert response.status_code == 200, response.get_data(as_text=True)
    return jwt.decode(response.get_json()["access_token"], options={"verify_signature": False})


def test_name_id_with_surrounding_spaces_is_another_subject(browser: Browser) -> None:
    alice = USERS["alice"]
    impostor = dataclasses.replace(alice, username="mallory",
                                   persistent_id=f" {alice.persistent_id} ",
                                   attributes={"mail": ["mallory@example.com"]})
    assert _access_token(browser, impostor)["sub"] != _access_token(browser, alice)["sub"]


def test_group_named_with_spaces_gives_no_role(browser: Browser) -> None:
    mallory = dataclasses.replace(USERS["bob"], attributes={
        "mail": ["mallory@example.com"], "isMemberOf": [" bridge-admins ", "bridge-admins\n"]})
    claims = _access_token(browser, mallory)
    assert "admin" not in claims.get("roles", [])
    assert _access_token(browser, USERS["alice"])["roles"] == ["admin"]
