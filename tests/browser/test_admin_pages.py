"""The admin pages in real Chromium against the development stack: an admin signs in through the
bridge's own SAML login, adds an IdP from metadata, sees a diff and applies it, rolls a
certificate, rolls back, edits settings, and runs a test login."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.dev_stack import dev_stack
from tests.test_idp_metadata import certificate, metadata

pytestmark = pytest.mark.browser


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    with dev_stack(tmp_path) as urls:
        yield urls


def _sign_in_at_the_idp(page: Page, user: str) -> None:
    page.wait_for_url(re.compile(r".*/sso/redirect\?SAMLRequest=.*"))
    page.fill("#username", user)
    page.fill("#password", user)
    page.click("#sign-in")


def _sign_in_as_admin(page: Page, stack: dict[str, str]) -> None:
    page.goto(stack["bridge"] + "/admin/")
    page.wait_for_url(re.compile(r".*/admin/login.*"))
    page.click("a.idp-login")
    _sign_in_at_the_idp(page, "alice")
    page.wait_for_url(stack["bridge"] + "/admin/")
    expect(page.locator("#idps")).to_contain_text("Development IdP")


def _upload(page: Page, path: Path, text: str) -> None:
    path.write_text(text)
    page.set_input_files("#new-metadata", str(path))
    page.click("#preview-metadata")


def test_an_admin_manages_an_idp_in_the_browser(page: Page, stack: dict[str, str],
                                                tmp_path: Path) -> None:
    _sign_in_as_admin(page, stack)
    first, second = certificate(), certificate()

    # Add an IdP by uploading its metadata.
    page.click("#add-idp")
    page.fill("#slug", "acme")
    page.fill("#display_name", "Acme Corp")
    page.select_option("#preset", "okta")
    (tmp_path / "acme.xml").write_text(metadata(first, entity_id="https://acme.example.com"))
    page.set_input_files("#metadata-file", str(tmp_path / "acme.xml"))
    page.click("#create")
    expect(page.locator("#notice")).to_have_text("IdP added.")
    expect(page.locator("h1")).to_contain_text("Acme Corp")
    href = page.get_attribute("#sp-metadata", "href")
    assert href is not None and href.endswith("/admin/idps/acme/sp-metadata")

    # The IdP adds its next certificate: applied at once, by the default policy.
    _upload(page, tmp_path / "two.xml", metadata(first, second, entity_id="https://acme.example.com"))
    expect(page.locator("#notice")).to_contain_text("applied")
    expect(page.locator("#certificates tr")).to_have_count(3)  # header + two certificates

    # It drops the first one: the diff waits for approval.
    _upload(page, tmp_path / "one.xml", metadata(second, entity_id="https://acme.example.com"))
    expect(page.locator("#notice")).to_contain_text("waits for your approval")
    pending = page.locator("tr[data-status='pending']")
    expect(pending.locator(".diff")).to_contain_text("− certificate")
    pending.locator("button.apply").click()
    expect(page.locator("#notice")).to_have_text("Version applied.")
    expect(page.locator("#certificates tr")).to_have_count(2)

    # Roll back to the version with both certificates.
    page.locator("tr[data-version='2'] button.restore").click()
    expect(page.locator("#notice")).to_have_text("Rolled back.")
    expect(page.locator("#certificates tr")).to_have_count(3)

    # Settings: a mistake is shown with its location and changes nothing; a fix is saved.
    page.fill("#settings-json", '{"clock_skew_seconds": 999}')
    page.click("#save-settings")
    expect(page.locator("#problems")).to_contain_text("clock_skew_seconds")
    page.fill("#settings-json", '{"display_name": "Acme Corporation", "clock_skew_seconds": 30}')
    page.click("#save-settings")
    expect(page.locator("#notice")).to_have_text("Settings saved.")
    expect(page.locator("h1")).to_contain_text("Acme Corporation")


def test_an_admin_runs_a_test_login(page: Page, stack: dict[str, str]) -> None:
    _sign_in_as_admin(page, stack)
    page.goto(stack["bridge"] + "/admin/idps/dev")
    page.click("#test-login")
    _sign_in_at_the_idp(page, "bob")
    page.wait_for_url(re.compile(r".*/admin/test-logins/.*"))
    expect(page.locator("#test-outcome")).to_contain_text("Accepted")
    expect(page.locator("#attributes")).to_contain_text("bob@example.com")
    expect(page.locator("#claims-v2")).to_contain_text('"sub"')
    # A test login issues nothing: bob is not signed in anywhere, and not an admin.
    expect(page.locator("#claims-v2")).not_to_contain_text("bridge-admin")


def test_a_person_without_the_admin_role_is_refused(page: Page, stack: dict[str, str]) -> None:
    page.goto(stack["bridge"] + "/admin/login")
    page.click("a.idp-login")
    _sign_in_at_the_idp(page, "bob")
    expect(page.locator("#error-code")).to_have_text("admin_role_missing")
    page.goto(stack["bridge"] + "/admin/")
    page.wait_for_url(re.compile(r".*/admin/login.*"))
