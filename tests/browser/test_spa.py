"""The reference SPA in real Chromium against the development IdP: PKCE login, access token in
memory only, refresh token in an HttpOnly cookie, both bound to a non-extractable DPoP key in
IndexedDB, an access token expiring mid-session and the silent refresh that follows, a reload that
signs back in silently with the same key, a copied refresh cookie refused outside the page, and
logout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.dev_stack import dev_stack
from tests.dpop_tools import DpopKey

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
    expect(page.locator("#api-result")).to_contain_text('"ver": 3')
    expect(page.locator("#token-type")).to_have_text("DPoP")
    expect(page.locator("#refreshes")).to_have_text("0")
    jkt = _bound_key(page)
    # The private key is in IndexedDB as a key object the page can sign with but not read out.
    assert page.evaluate(_KEY_IN_STORE) == ["ECDSA", False, "not exportable"]

    # The access token expires mid-session: the next call gets a 401, refreshes once through the
    # cookie, and retries, without the person noticing.
    page.wait_for_timeout((TTL + 2) * 1000)
    page.click("#call-api")
    expect(page.locator("#refreshes")).to_have_text("1")
    expect(page.locator("#api-result")).to_contain_text("200")
    rotated = {c["name"]: c for c in page.context.cookies(stack["bridge"])}["bridge-refresh-spa"]
    assert rotated["value"] != refresh_cookie["value"]
    assert _bound_key(page) == jkt

    # A reload loses the in-memory token; the cookie and the stored key sign the page back in.
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    page.click("#call-api")
    expect(page.locator("#api-result")).to_contain_text("200")
    assert _bound_key(page) == jkt

    page.click("#sign-out")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
    assert "bridge-refresh-spa" not in {c["name"] for c in page.context.cookies(stack["bridge"])}
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")


_KEY_IN_STORE = """async () => {
    const db = await new Promise((resolve) => {
        const request = indexedDB.open("bridge-spa", 1);
        request.onsuccess = () => resolve(request.result);
    });
    const pair = await new Promise((resolve) => {
        const request = db.transaction("keys").objectStore("keys").get("dpop");
        request.onsuccess = () => resolve(request.result);
    });
    let exported = "exported";
    try { await crypto.subtle.exportKey("jwk", pair.privateKey); }
    catch (e) { exported = "not exportable"; }
    return [pair.privateKey.algorithm.name, pair.privateKey.extractable, exported];
}"""


def _bound_key(page: Page) -> str:
    """The cnf.jkt of the access token the API last saw."""
    text = page.locator("#api-result").inner_text()
    claims = json.loads(text.split("\n", 1)[1])["claims"]
    return str(claims["cnf"]["jkt"])


def test_a_copied_refresh_cookie_is_useless_outside_the_page(page: Page,
                                                             stack: dict[str, str]) -> None:
    _sign_in(page, stack)
    # Malware reads the cookie jar; it sends the token from elsewhere, with the SPA's Origin.
    stolen = {c["name"]: c for c in page.context.cookies(stack["bridge"])}["bridge-refresh-spa"]
    form = {"grant_type": "refresh_token", "client_id": "spa", "refresh_token": stolen["value"]}
    headers = {"Origin": stack["spa"]}
    without_key = requests.post(stack["bridge"] + "/token", data=form, headers=headers, timeout=10)
    assert without_key.status_code == 400
    assert without_key.json()["error"] == "invalid_dpop_proof"
    thief = DpopKey()
    nonce = without_key.headers["DPoP-Nonce"]
    with_own_key = requests.post(
        stack["bridge"] + "/token", data=form, timeout=10,
        headers={**headers, "DPoP": thief.proof("POST", stack["bridge"] + "/token", nonce=nonce)})
    assert with_own_key.status_code == 400
    assert with_own_key.json()["error"] == "invalid_grant"
    # Nothing was used up or ended: the page, which holds the key, carries on.
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")
    expect(page.locator("#refreshes")).to_have_text("1")


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
