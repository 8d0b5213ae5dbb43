"""The IdP settings form in real Chromium: after a test login, IT edits a group -> role rule and
the preview shows at once what that login would get, under the page's own Content-Security-Policy
(the script loaded by its hash, the preview fetched from our origin); then saves, and the TOML
view shows the rule. Screenshots are kept as test artifacts (tests/browser/test_onboarding.py)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import html
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.browser.test_onboarding import (  # noqa: F401  (fixtures)
    CAROL,
    VendorIdp,
    _add_metadata,
    _draft,
    _sign_in_as_admin,
    _sign_in_at,
    artifacts,
    stack,
    vendor_idp,
)
from tests.test_admin_api import api, token  # noqa: F401  (fixtures)
from tests.test_idp_stages import SLUG, Admin, admin  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


def _preview_v2(page: Page) -> dict:  # type: ignore[type-arg]
    return dict(json.loads(page.locator("#preview-v2").inner_text()))


def test_editing_a_role_rule_changes_the_preview_then_it_is_saved(
        page: Page, stack: dict[str, str],  # noqa: F811
        vendor_idp: Callable[..., VendorIdp], tmp_path: Path,  # noqa: F811
        artifacts: Path) -> None:  # noqa: F811
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if isinstance(message, ConsoleMessage) and message.type == "error" else None)
    bridge, slug = stack["bridge"], "contoso-okta"
    okta = vendor_idp(CAROL)  # carol is in Everyone and engineering
    _sign_in_as_admin(page, stack)
    _draft(page, slug, "Contoso", "okta", artifacts)
    okta.our_metadata = lambda: requests.get(f"{bridge}/saml/{slug}/metadata", timeout=10).content
    _add_metadata(page, okta, tmp_path / "okta-metadata.xml", artifacts)
    preview = page.locator("#settings-preview")
    # Before any test login the preview says how to get one.
    expect(preview).to_have_attribute("data-outcome", "no_test_login")
    expect(page.locator("#preview-status")).to_contain_text("Test a login")

    page.click("#test-login")
    _sign_in_at(page, "carol")
    page.wait_for_url(f"{bridge}/admin/test-logins/*")
    expect(page.locator("#test-outcome")).to_contain_text("Accepted")
    page.goto(f"{bridge}/admin/idps/{slug}")
    expect(preview).to_have_attribute("data-outcome", "accepted")
    assert _preview_v2(page)["roles"] == []

    # A rule in the blank row: the preview shows its role, nothing is saved yet.
    row = page.locator("#role-rules tr.role-rule").first
    row.locator("input[name=role_value]").fill("engineering")
    row.locator("input[name=role_name]").fill("developer")
    expect(page.locator("#preview-v2")).to_contain_text('"developer"')
    assert _preview_v2(page)["roles"] == ["developer"]
    # Another row, added by the button, with a prefix rule.
    page.click("#add-role-rule")
    added = page.locator("#role-rules tr.role-rule").nth(1)
    added.locator("select[name=role_match]").select_option("prefix")
    added.locator("input[name=role_value]").fill("Every")
    added.locator("input[name=role_name]").fill("staff")
    expect(page.locator("#preview-v2")).to_contain_text('"staff"')
    assert _preview_v2(page)["roles"] == ["developer", "staff"]
    # A bad rule shows the problem a save would get, and the page stays as typed.
    added.locator("select[name=role_match]").select_option("regex")
    added.locator("input[name=role_value]").fill("(")
    expect(preview).to_have_attribute("data-outcome", "invalid")
    expect(page.locator("#preview-problems")).to_contain_text(
        f"IdP {slug} settings: mapping.roles[1].regex: not a valid regular expression")
    added.locator("button.remove-rule").click()
    expect(preview).to_have_attribute("data-outcome", "accepted")
    assert _preview_v2(page)["roles"] == ["developer"]
    page.screenshot(path=artifacts / "06-rule-preview.png", full_page=True)
    assert "roles" not in (tomllib.loads(page.locator("#settings-json").input_value())
                           .get("mapping") or {})

    page.click("#save-common-settings")
    expect(page.locator("#notice")).to_have_text("Settings saved.")
    saved = tomllib.loads(page.locator("#settings-json").input_value())
    assert saved["mapping"] == {"preset": "okta",
                                "roles": [{"exact": "engineering", "role": "developer"}]}
    expect(preview).to_have_attribute("data-outcome", "accepted")
    assert _preview_v2(page)["roles"] == ["developer"]
    page.screenshot(path=artifacts / "07-saved.png", full_page=True)
    # The TOML below the form is previewed as it is edited, too.
    box = page.locator("#settings-json")
    box.fill(box.input_value().replace('role = "developer"', 'role = "engineer"'))
    expect(page.locator("#preview-v2")).to_contain_text('"engineer"')
    assert _preview_v2(page)["roles"] == ["engineer"]
    # No script or fetch was refused by the page's policy.
    assert not [text for text in refused if "Content Security Policy" in text], refused


def test_a_sha1_exception_the_settings_accept_survives_a_form_save_in_chromium(
        admin: Admin, chromium: Browser) -> None:  # noqa: F811
    """Stored through the admin API in another ISO form ("20270630"), the SHA-1 exception is
    what Chromium's date field keeps, and a form save that did not edit it keeps it."""
    admin.draft("shibboleth")
    stored: dict[str, Any] = {"display_name": "Contoso", "mapping": {"preset": "shibboleth"},
                              "insecure_allow_sha1_until": "20270630"}
    put = admin.client.put(f"/admin/api/idps/{SLUG}/settings", json=stored,
                           headers={"X-CSRF-Token": admin.csrf})
    assert put.status_code == 200, put.get_data(as_text=True)
    body = admin.client.get(f"/admin/idps/{SLUG}").get_data(as_text=True)

    # What Chromium makes of the page's date field (the value it would submit).
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_content(body)
        shown = page.locator("#form-sha1-until").input_value()
    finally:
        context.close()
    assert shown == "2027-06-30"

    [form] = html.fromstring(body).xpath("//form[@id='settings-form']")
    posted: dict[str, list[str]] = {}
    for name, value in form.form_values():
        posted.setdefault(name, []).append(value)
    posted["insecure_allow_sha1_until"] = [shown]
    posted["role_value"], posted["role_name"] = ["engineering"], ["developer"]
    saved = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data=posted)
    assert saved.status_code == 303, saved.get_data(as_text=True)
    settings = admin.client.get(f"/admin/api/idps/{SLUG}").get_json()["settings"]
    assert settings["insecure_allow_sha1_until"] == "20270630", (shown, settings)
