"""An IdP's settings on its page are TOML, as in idp_metadata/<slug>.toml and the README: shown
as TOML, saved from TOML (JSON too), every mistake named with its location and nothing changed."""

from __future__ import annotations

import tomllib

import pytest
from lxml import html

from bridge.dev.saml_idp import DevIdp
from tests.test_admin_api import api, token  # noqa: F401  (fixtures)
from tests.test_idp_stages import SLUG, Admin, admin  # noqa: F401  (fixture)

PASTED = '''display_name = "Contoso"
clock_skew_seconds = 120
insecure_allow_sha1_until = 2027-06-30

[mapping]
preset = "okta"
email_verified = true

[mapping.claims.email]
from = ["email", "mail"]
transforms = ["trim", "lower"]

[[mapping.roles]]
prefix = "app-admin"
role = "admin"
'''


def _settings_box(admin: Admin) -> str:  # noqa: F811
    page = admin.page(f"/admin/idps/{SLUG}")
    return str(page.get_element_by_id("settings-json").text or "")


def _saved(admin: Admin) -> dict:  # noqa: F811
    return dict(admin.client.get(f"/admin/api/idps/{SLUG}").get_json()["settings"])


def test_settings_are_shown_and_saved_as_toml(admin: Admin) -> None:  # noqa: F811
    admin.draft("okta")
    assert tomllib.loads(_settings_box(admin)) == {"display_name": "Contoso",
                                                   "mapping": {"preset": "okta"}}

    saved = admin.post(f"/admin/idps/{SLUG}/settings", settings_text=PASTED)

    assert saved.status_code == 303, saved.get_data(as_text=True)
    settings = _saved(admin)
    assert settings["clock_skew_seconds"] == 120
    assert settings["insecure_allow_sha1_until"] == "2027-06-30"
    assert settings["mapping"]["roles"] == [{"prefix": "app-admin", "role": "admin"}]
    # Shown again as TOML, it reads back to the same settings.
    assert tomllib.loads(_settings_box(admin))["mapping"] == tomllib.loads(PASTED)["mapping"]


def test_a_toml_mistake_is_named_and_changes_nothing(admin: Admin) -> None:  # noqa: F811
    admin.draft("okta")
    refused = admin.post(f"/admin/idps/{SLUG}/settings",
                         settings_text='display_name = "Contoso"\nclock_skew_seconds 120\n')
    assert refused.status_code == 422
    [problem] = html.fromstring(refused.get_data(as_text=True)).xpath("//div[@id='problems']//li/text()")
    assert problem.startswith("settings: not valid TOML (") and "line 2" in problem
    assert "JSON" not in problem
    assert _saved(admin) == {"display_name": "Contoso", "mapping": {"preset": "okta"}}


def test_a_setting_out_of_range_is_named_with_its_location(admin: Admin) -> None:  # noqa: F811
    admin.draft("okta")
    refused = admin.post(f"/admin/idps/{SLUG}/settings", settings_text="clock_skew_seconds = 999\n")
    assert refused.status_code == 422
    assert b"IdP other settings: clock_skew_seconds: must be an integer from 0 to 300" in refused.data


def test_json_is_still_read(admin: Admin) -> None:  # noqa: F811
    admin.draft("okta")
    saved = admin.post(f"/admin/idps/{SLUG}/settings", settings_text='{"clock_skew_seconds": 30}')
    assert saved.status_code == 303 and _saved(admin) == {"clock_skew_seconds": 30}


def test_the_common_settings_form_keeps_the_rest(admin: Admin) -> None:  # noqa: F811
    admin.draft("okta")
    admin.post(f"/admin/idps/{SLUG}/settings", settings_text=PASTED)

    saved = admin.post(f"/admin/idps/{SLUG}/settings/common", preset="entra",
                       clock_skew_seconds="90", sign_requests="always",
                       insecure_allow_sha1_until="")

    assert saved.status_code == 303, saved.get_data(as_text=True)
    settings = _saved(admin)
    assert settings["mapping"]["preset"] == "entra"
    assert settings["mapping"]["roles"] == [{"prefix": "app-admin", "role": "admin"}]
    assert (settings["clock_skew_seconds"], settings["sign_requests"]) == (90, "always")
    assert "insecure_allow_sha1_until" not in settings  # emptied: no exception any more
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.xpath("//select[@id='form-preset']/option[@selected]/@value") == ["entra"]


@pytest.mark.parametrize("skew,problem", [
    ("ninety", "clock_skew_seconds: a whole number of seconds, not 'ninety'"),
    # Digits to str.isdigit(), not to int(): superscripts, other scripts' digits.
    ("²", "clock_skew_seconds: a whole number of seconds, not '²'"),
    ("1²", "clock_skew_seconds: a whole number of seconds, not '1²'"),
    ("١٢", "clock_skew_seconds: a whole number of seconds, not '١٢'"),
    ("999", "IdP other settings: clock_skew_seconds: must be an integer from 0 to 300, got 999"),
])
def test_the_form_names_a_mistake_and_changes_nothing(admin: Admin, skew: str,  # noqa: F811
                                                      problem: str) -> None:
    admin.draft("okta")
    refused = admin.post(f"/admin/idps/{SLUG}/settings/common", preset="okta",
                         clock_skew_seconds=skew, sign_requests="auto")
    assert refused.status_code == 422
    problems = html.fromstring(refused.get_data(as_text=True)).xpath(
        "//div[@id='problems']//li/text()")
    assert problems == [problem]
    assert _saved(admin) == {"display_name": "Contoso", "mapping": {"preset": "okta"}}


DEEP = 5000


@pytest.mark.parametrize("text", [
    "a = " + "[" * DEEP + "]" * DEEP,
    "a = " + "{b = " * DEEP + "1" + "}" * DEEP,
    '{"a": ' + "[" * DEEP + "]" * DEEP + "}",
    "[a]\nb = " + "[" * 40 + "]" * 40,  # parses, but deeper than any setting
], ids=["toml-arrays", "toml-inline-tables", "json", "toml-within-the-stack"])
def test_settings_nested_too_deep_are_refused_and_change_nothing(
        admin: Admin, text: str) -> None:  # noqa: F811
    admin.draft("okta")
    refused = admin.post(f"/admin/idps/{SLUG}/settings", settings_text=text)
    assert refused.status_code == 422
    problems = html.fromstring(refused.get_data(as_text=True)).xpath(
        "//div[@id='problems']//li/text()")
    assert problems == ["settings: nested deeper than 32 levels"]
    assert _saved(admin) == {"display_name": "Contoso", "mapping": {"preset": "okta"}}


@pytest.mark.parametrize("form", [
    {"slug": "deep", "settings": "[" * 100000 + "]" * 100000},
    {"slug": "deep", "settings": '{"a": ' + "[" * 40 + "]" * 40 + "}"},
])
def test_settings_nested_too_deep_create_nothing(  # type: ignore[no-untyped-def]
        api, form: dict[str, str]) -> None:  # noqa: F811
    refused = api("POST", "/admin/api/idps", data=form, content_type="multipart/form-data")
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert refused.get_json()["problems"] == ["settings: nested deeper than 32 levels"]
    assert api("GET", "/admin/api/idps/deep").status_code == 404


def test_a_json_body_nested_too_deep_is_refused(  # type: ignore[no-untyped-def]
        api, session_other_idp: DevIdp) -> None:  # noqa: F811
    created = api("POST", "/admin/api/idps", json={
        "slug": "other", "metadata_xml": session_other_idp.metadata_xml().decode()})
    assert created.status_code == 201
    before = api("GET", "/admin/api/idps/other").get_json()["settings"]
    for body in ("[" * 100000 + "]" * 100000, '{"a": ' + "[" * 40 + "]" * 40 + "}"):
        refused = api("PUT", "/admin/api/idps/other/settings", data=body,
                      content_type="application/json")
        assert refused.status_code == 422, refused.get_data(as_text=True)
    assert api("GET", "/admin/api/idps/other").get_json()["settings"] == before
