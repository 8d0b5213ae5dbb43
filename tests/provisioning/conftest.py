"""A bridge whose IdP "dev" matches SCIM users to logins by ``userName`` (the default) or, for
the tests that ask for it, by ``externalId``; and a SCIM client with the IdP's token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from tests.conftest import CONFIDENTIAL_CLIENT, DEMO_CLIENT, make_settings
from tests.helpers import Browser
from tests.leaks import remember

ALICE_NAME_ID = "a1b2c3d4-0001"  # the dev IdP's persistent NameID of alice
BOB_NAME_ID = "a1b2c3d4-0002"


@pytest.fixture
def scim_user_key() -> str:
    return "userName"


@pytest.fixture
def idp_settings() -> str:
    """More top-level settings of the IdP "dev", as TOML."""
    return ""


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp,
             session_other_idp: DevIdp, scim_user_key: str, idp_settings: str) -> Settings:
    session_other_idp.write_metadata(idp_dir, "other")  # an IdP whose token is not dev's
    dev = idp_dir / "dev.toml"
    # Top-level keys go before the file's tables.
    dev.write_text(f'scim_user_key = "{scim_user_key}"\n{idp_settings}\n' + dev.read_text())
    # The confidential client is the API demo's tokens are for: it may introspect them.
    api = {**CONFIDENTIAL_CLIENT, "audience": DEMO_CLIENT["audience"]}
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, api])


def login_refused(browser: Browser) -> bool:
    """Whether alice's next login through the dev IdP is refused as deprovisioned."""
    answer = browser.post_acs(browser.signed_response(browser.start(), "alice"))
    return answer.status_code == 403 and answer.get_json()["code"] == "login_deprovisioned"


def issue_token(app: Flask, slug: str = "dev") -> str:
    _, token = app.extensions["application"].scim_tokens.issue(slug, actor="test")
    remember(token)
    return token


class Scim:
    """A SCIM client of one IdP's endpoint, speaking through the Flask test client."""

    def __init__(self, client: FlaskClient, token: str | None, slug: str = "dev",
                 headers: dict[str, str] | None = None) -> None:
        self.client, self.token, self.slug = client, token, slug
        self.headers = headers or {"Content-Type": "application/scim+json"}

    def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        headers = dict(self.headers)
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.client.open(f"/scim/v2/{self.slug}{path}", method=method, headers=headers,
                                json=body, **kwargs)


@pytest.fixture
def scim(app: Flask, client: FlaskClient) -> Scim:
    return Scim(client, issue_token(app))
