"""The reference SPA in real Chromium against the development IdP: PKCE login, access token in
memory only, refresh token in an HttpOnly cookie, an access token expiring mid-session and the
silent refresh that follows, a reload that signs back in silently, and logout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.dev_stack import dev_stack

pytestmark = pytest.mark.browser
TTL = 60  # the shortest access-token lifetime the bridge allows


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    with dev_stack(tmp_path, spa=True, settings=f"access_token_ttl_seconds = {TTL}\n") as urls:
        yield urls


def _sign_in(page: Page, stack: dict[str, str]) -> None:
    page.goto(stack["spa"] + "/")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
    page.click("#sign-in")
    page.wait_for_url(lambda url: url.startswith(stack["idp"] + "/sso/redirect"))
    page.fill("#username", "alice")
    page.fill("#password", "alice")
    page.click("#sign-in")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    assert page.url == stack["spa"] + "/"  # the code is gone from the address bar


def test_spa_session_lifecycle(page: Page, stack: dict[str, str]) -> None:
    _sign_in(page, stack)

    # Nothing token-like is reachable from JavaScript storage or cookies.
    storage = page.evaluate("() => JSON.stringify([Object.entries(localStorage), "
                            "Object.entries(sessionStorage), document.cookie])")
    assert "ey" not in storage and "bridge-refresh" not in storage, storage
    cookies = {c["name"]: c for c in page.context.cookies(stack["bridge"])}
    refresh_cookie = cookies["bridge-refresh-spa"]  # the SPA's own cookie (client "spa")
    assert refresh_cookie["httpOnly"] and refresh_cookie["sameSite"] == "Strict"

    page.click("#call-api")
    expect(page.locator("#api-result")).to_contain_text("200")
    expect(page.locator("#api-result")).to_contain_text('"ver": 2')
    expect(page.locator("#refreshes")).to_have_text("0")

    # The access token expires mid-session: the next call gets a 401, refreshes once through the
    # cookie, and retries, without the person noticing.
    page.wait_for_timeout((TTL + 2) * 1000)
    page.click("#call-api")
    expect(page.locator("#refreshes")).to_have_text("1")
    expect(page.locator("#api-result")).to_contain_text("200")
    rotated = {c["name"]: c for c in page.context.cookies(stack["bridge"])}["bridge-refresh-spa"]
    assert rotated["value"] != refresh_cookie["value"]

    # A reload loses the in-memory token; the cookie signs the page back in silently.
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")

    page.click("#sign-out")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
    assert "bridge-refresh-spa" not in {c["name"] for c in page.context.cookies(stack["bridge"])}
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")


_STEAL = """async (bridge) => {
    try {
        const r = await fetch(bridge + "/token", {method: "POST", credentials: "include",
            headers: {"Content-Type": "application/x-www-form-urlencoded", "X-Bridge-Refresh": "1"},
            body: "grant_type=refresh_token&client_id=spa"});
        return "read:" + r.status + ":" + (await r.text());
    } catch (e) { return "blocked"; }
}"""


def test_other_origins_cannot_use_the_refresh_cookie(page: Page, stack: dict[str, str]) -> None:
    _sign_in(page, stack)
    # An origin registered for no client (here the IdP's) gets no CORS answer: the preflight
    # for the custom header fails and the request is never sent.
    page.goto(stack["idp"] + "/no-such-page")
    assert page.evaluate(_STEAL, stack["bridge"]) == "blocked"
    # An origin registered for another client may read answers, but not with this client's
    # cookie: the Origin check refuses it.
    page.goto(stack["demo"] + "/")
    outcome = page.evaluate(_STEAL, stack["bridge"])
    assert outcome.startswith("read:400:") and "invalid_request" in outcome, outcome
    # The SPA itself still refreshes: nothing was burnt.
    page.goto(stack["spa"] + "/")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
