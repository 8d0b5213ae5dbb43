"""Step-up in real Chromium, end to end with scripts/dev: the reference SPA signs in with a
password, its API refuses the payroll action with RFC 9470's challenge, the SPA starts a login
asking for what the challenge named, the development IdP asks for its second factor, and the
action goes through with an `mfa` token. A prompt=none login comes back with login_required."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from tests.dev_stack import dev_stack

pytestmark = pytest.mark.browser


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    with dev_stack(tmp_path, spa=True) as urls:
        yield urls


def _idp_login(page: Page, stack: dict[str, str], *, otp: str | None = None) -> None:
    page.wait_for_url(lambda url: url.startswith(stack["idp"] + "/sso/redirect"))
    page.fill("#username", "alice")
    page.fill("#password", "alice")
    if otp is not None:
        page.fill("#otp", otp)
    page.click("#sign-in")


def test_the_spa_steps_up_when_the_api_asks(page: Page, stack: dict[str, str]) -> None:
    page.goto(stack["spa"] + "/")
    page.click("#sign-in")
    _idp_login(page, stack)  # a password login
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-in")

    authorize: list[str] = []

    def remember(request: Request) -> None:
        if request.url.startswith(stack["bridge"] + "/authorize"):
            authorize.append(request.url)

    page.on("request", remember)
    page.click("#run-payroll")
    # The API's 401 challenge sends the SPA to a new login; the IdP says what was asked.
    page.wait_for_url(lambda url: url.startswith(stack["idp"] + "/sso/redirect"))
    assert "acr_values=mfa" in authorize[0] and "max_age=300" in authorize[0]
    expect(page.locator("#mfa-asked")).to_be_visible()
    expect(page.locator("#second-factor")).to_be_checked()

    # Without the second factor the IdP does not log the person in.
    page.uncheck("#second-factor")
    page.fill("#username", "alice")
    page.fill("#password", "alice")
    page.click("#sign-in")
    expect(page.locator("h1")).to_have_text("A second factor is required")
    page.go_back()

    page.check("#second-factor")
    _idp_login(page, stack, otp="123456")
    result = page.locator("#api-result")
    expect(result).to_contain_text("200")
    body = json.loads(result.text_content().split("\n", 1)[1])
    assert body["payroll"] == "run" and body["acr"] == "mfa" and body["amr"] == ["mfa"]
    assert page.url == stack["spa"] + "/"


def test_prompt_none_comes_back_with_login_required(page: Page, stack: dict[str, str]) -> None:
    """The development IdP keeps no sessions: asked not to interact, it answers NoPassive, and
    the bridge tells the SPA login_required on its redirect URI."""
    page.goto(stack["spa"] + "/")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
    page.evaluate("""() => {
        sessionStorage.setItem("bridge-login", JSON.stringify({verifier: "v", state: "s"}));
        const config = window.BRIDGE_SPA_CONFIG;
        location.assign(config.bridge + "/authorize?" + new URLSearchParams({
            response_type: "code", client_id: config.clientId, redirect_uri: config.redirectUri,
            scope: config.scope, state: "s", prompt: "none",
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            code_challenge_method: "S256"}));
    }""")
    expect(page.locator("#status")).to_contain_text("Sign-in refused: login_required")
    expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
    assert page.url == stack["spa"] + "/"
