"""README command 1 in a real browser: ``scripts/dev`` runs the development IdP, the bridge and the
demo app; headless Chromium clicks through the login exactly as a person would, including the
IdP's auto-posting SAML form, cookies and redirects."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.browser


def _wait_for_url(page: Page, url: str, tmp_path: Path) -> None:
    """Wait until the page is at ``url``; if it never gets there, say where it stopped and why."""
    try:
        page.wait_for_url(url)
    except PlaywrightTimeout:
        log = tmp_path / "dev.log"  # where the dev_stack fixture sends scripts/dev's output
        raise AssertionError(
            f"expected {url}, the browser stopped at {page.url}:\n{page.inner_text('body')}\n"
            f"--- scripts/dev ---\n{log.read_text()[-4000:] if log.exists() else '(no log)'}"
        ) from None


def _to_idp_login_form(page: Page, dev_stack: dict[str, str]) -> None:
    page.goto(dev_stack["demo"] + "/")
    expect(page.locator("#signed-in")).to_have_count(0)
    page.click("#sign-in")
    # Demo /login -> bridge /authorize -> the development IdP's login form.
    page.wait_for_url(lambda url: url.startswith(dev_stack["idp"] + "/sso/redirect?SAMLRequest="))
    expect(page.locator("h1")).to_have_text("Development IdP")


def test_a_person_signs_in_through_the_demo_in_a_browser(page: Page, dev_stack: dict[str, str],
                                                         tmp_path: Path) -> None:
    _to_idp_login_form(page, dev_stack)
    page.fill("#username", "alice")
    page.fill("#password", "alice")
    page.click("#sign-in")

    # The IdP's page posts the SAML response to the bridge's ACS by script; the bridge redirects
    # to the demo's /callback, which exchanges the code and redirects to the demo's home page.
    _wait_for_url(page, dev_stack["demo"] + "/", tmp_path)
    expect(page.locator("#signed-in")).to_be_visible()
    claims = page.locator("#claims")
    expect(claims).to_contain_text("alice@example.com")
    expect(claims).to_contain_text('"ver": 1')
    expect(claims).to_contain_text(f'"iss": "{dev_stack["bridge"]}"')

    screenshot = tmp_path / "signed-in.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.stat().st_size > 0


def test_a_wrong_password_is_refused_in_a_browser(page: Page, dev_stack: dict[str, str]) -> None:
    _to_idp_login_form(page, dev_stack)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.fill("#username", "alice")
    page.fill("#password", "not-alice")
    with page.expect_response(dev_stack["idp"] + "/login") as answer:
        page.click("#sign-in")
    assert answer.value.status == 401
    expect(page.locator("h1")).to_have_text("Wrong username or password")
    assert page.url == dev_stack["idp"] + "/login"
    # No SAML response was posted to the bridge, so no code ever reached the demo.
    assert requested == [dev_stack["idp"] + "/login"]

    # Nothing reached the demo: it still offers to sign in.
    page.goto(dev_stack["demo"] + "/")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#signed-in")).to_have_count(0)
