"""The client pages in real Chromium against the development stack and a second bridge node on its
database: an admin registers a client, and it logs in through the other node at once, with no
restart; a confidential client's secret is shown once and rotates with an overlap in which both
work on the other node; a mistake is shown with its location and changes nothing; deletion."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.test_admin_pages import _sign_in_as_admin, _sign_in_at_the_idp
from tests.dev_stack import ROOT, _wait_for, dev_stack, free_port
from tests.helpers import pkce_pair

pytestmark = pytest.mark.browser


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The development stack, and a second bridge node (``node2``): another process with the same
    settings file, so the same database and keys, serving on a port of its own."""
    with dev_stack(tmp_path) as urls:
        port = free_port()
        log = tmp_path / "node2.log"
        with log.open("wb") as output:
            node = subprocess.Popen(
                [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port),
                 "--workers", "1"],
                cwd=ROOT, env={**os.environ, "BRIDGE_CONFIG": str(tmp_path / "bridge.toml")},
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            node2 = f"http://127.0.0.1:{port}"
            _wait_for(node2 + "/healthz", node, log)
            yield {**urls, "node2": node2}
        finally:
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(timeout=15)


def _register(page: Page, client_id: str, kind: str, redirect_uri: str) -> None:
    page.click("#add-client")
    page.fill("#client_id", client_id)
    page.select_option("#kind", kind)
    page.fill("#redirect_uris", redirect_uri)
    page.fill("#audience", f"{client_id}-api")
    page.select_option("#claims_version", "2")
    page.click("#register")


def _introspect(node: str, client_id: str, secret: str) -> int:
    return requests.post(node + "/introspect", data={"token": "not-a-token"},
                         auth=(client_id, secret), timeout=10).status_code


def test_a_client_registered_in_the_pages_logs_in_through_the_other_node(
        page: Page, stack: dict[str, str]) -> None:
    node2 = stack["node2"]
    callback = node2 + "/healthz"  # any URL of the client's: the code arrives in its query
    _sign_in_as_admin(page, stack)

    # A mistake is named with its location, and nothing is registered.
    _register(page, "reports", "public", "http://reports.example.com/cb#top")
    expect(page.locator("#problems")).to_contain_text("redirect_uris")
    expect(page.locator("#problems")).to_contain_text("without fragment")
    page.click("#clients-nav")
    expect(page.locator("#clients")).not_to_contain_text("reports")

    _register(page, "reports", "public", callback)
    expect(page.locator("#notice")).to_have_text("Client registered.")
    expect(page.locator("#client-source")).to_contain_text("api")

    # The other node knows it at once: a login through it, code and tokens included.
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    page.goto(node2 + "/authorize?" + urlencode({
        "response_type": "code", "client_id": "reports", "redirect_uri": callback,
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
        "scope": "openid email", "idp": "dev"}))
    _sign_in_at_the_idp(page, "bob")
    page.wait_for_url(re.compile(re.escape(callback) + r"\?code=.*"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == [state]
    tokens = requests.post(node2 + "/token", data={
        "grant_type": "authorization_code", "code": query["code"][0], "client_id": "reports",
        "redirect_uri": callback, "code_verifier": verifier}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["access_token"] and tokens.json()["refresh_token"]


def test_a_secret_shown_once_rotates_with_an_overlap_on_every_node(
        page: Page, stack: dict[str, str], tmp_path: Path) -> None:
    node2 = stack["node2"]
    _sign_in_as_admin(page, stack)
    _register(page, "reports-api", "confidential", "https://reports.example.com/cb")
    first = page.locator("#client-secret").inner_text().strip()
    assert len(first) >= 43
    assert _introspect(node2, "reports-api", first) == 200

    # Shown once: the client's page holds it no more.
    page.goto(stack["bridge"] + "/admin/clients/reports-api")
    expect(page.locator("#client-secret")).to_have_count(0)
    assert first not in page.content()

    page.fill("#overlap", "600")
    page.click("#rotate-secret")
    second = page.locator("#client-secret").inner_text().strip()
    assert second != first
    expect(page.locator("#secrets tr[data-state='overlap']")).to_have_count(1)
    expect(page.locator("#secrets tr[data-state='current']")).to_have_count(1)
    # During the overlap both work, on the other node too: no failed request while moving.
    assert _introspect(node2, "reports-api", second) == 200
    assert _introspect(node2, "reports-api", first) == 200

    page.fill("#overlap", "0")  # a leaked secret: the older ones end at once
    page.click("#rotate-secret")
    third = page.locator("#client-secret").inner_text().strip()
    assert _introspect(node2, "reports-api", third) == 200
    assert _introspect(node2, "reports-api", second) == 401
    assert _introspect(node2, "reports-api", first) == 401

    # Settings: a mistake changes nothing; then the client is deleted.
    page.fill("#client-settings", '{"redirect_uris": ["https://*.example.com/cb"], '
                                  '"audience": "x", "public": false}')
    page.click("#save-client")
    expect(page.locator("#problems")).to_contain_text("wildcard")
    page.click("#delete-client")
    expect(page.locator("#notice")).to_contain_text("Client reports-api deleted")
    expect(page.locator("#clients")).not_to_contain_text("reports-api")
    expect(page.locator("#clients")).to_contain_text("demo")
    # Neither node logs a secret, also not the refused ones.
    for log, seen in ((tmp_path / "dev.log", "/admin/clients/reports-api/secret"),
                      (tmp_path / "node2.log", "POST /introspect 401")):
        text = log.read_text()
        assert seen in text
        assert all(secret not in text for secret in (first, second, third))
