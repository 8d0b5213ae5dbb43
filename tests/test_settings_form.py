"""The IdP settings form beyond the common settings: attribute sources and group -> role rules,
saved through the same validation as TOML without losing what the form does not show; and the
live preview of what the last test login would produce with the settings as edited."""

from __future__ import annotations

import copy
import json
import time
import tomllib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html
from sqlalchemy import select

from bridge.admin.logins import LAST_TEST_LOGIN_SECONDS
from bridge.claims.mapping import (
    CLAIMS,
    MAX_PATTERN_STEPS,
    MAX_PATTERN_TEXT,
    MAX_PROBLEMS,
    MAX_ROLE_RULES,
)
from bridge.dev.saml_idp import USERS, DevIdp
from bridge.idps.settings import parse_idp_settings
from bridge.idps.settings_form import (
    FINGERPRINT_FIELD,
    ROLE_RULES_FIELD,
    form_values,
    settings_from_form,
    source_field,
)
from bridge.services import Services
from bridge.store.maintenance import purge_expired
from bridge.store.models import AuthorizationCode, IdpRecord, TestLogin
from tests.helpers import Browser
from tests.test_admin_api import api, token  # noqa: F401  (fixtures)
from tests.test_idp_stages import SLUG, Admin, admin  # noqa: F401  (fixture)

# Settings as an admin wrote them, with much the form does not show.
WRITTEN = '''display_name = "Contoso"
clock_skew_seconds = 60
sign_requests = "auto"
insecure_allow_sha1_until = 2027-06-30
email_domains = ["contoso.example"]

[mapping]
preset = "shibboleth"
email_verified = true
group_names = { "6f1c0e6a" = "engineering" }
groups = { deny = [{ exact = "contractors" }] }

[mapping.claims.email]
from = "urn:oid:0.9.2342.19200300.100.1.3"
transforms = ["trim", "lower"]

[mapping.claims.name]
from = ["urn:oid:2.16.840.1.113730.3.1.241"]
default = "Someone"

[[mapping.roles]]
prefix = "app-admin"
role = "admin"

[[mapping.roles]]
regex = "eng(ineering)?"
role = "developer"

[authn_contexts]
preset = "shibboleth"
'''


def _stored(text: str) -> dict[str, Any]:
    """Settings as the store holds them (JSON: dates as ISO strings)."""
    return dict(json.loads(json.dumps(tomllib.loads(text), default=str)))


def _form_post(settings: dict[str, Any]) -> dict[str, list[str]]:
    """What the page's form posts for ``settings`` when nothing is edited (every field as the
    page fills it, one empty rule row for a new rule)."""
    shown = form_values(settings)
    post = {"preset": [(settings.get("mapping") or {}).get("preset", "")],
            "clock_skew_seconds": [str(settings.get("clock_skew_seconds", 60))],
            "sign_requests": [settings.get("sign_requests", "auto")],
            "insecure_allow_sha1_until": [settings.get("insecure_allow_sha1_until", "")],
            ROLE_RULES_FIELD: ["1"]}
    for claim in CLAIMS:
        if shown["sources"][claim] is not None:
            post[source_field(claim)] = [shown["sources"][claim]]
    rows = [*shown["roles"], {"match": "exact", "value": "", "role": ""}]
    post["role_match"] = [row["match"] for row in rows]
    post["role_value"] = [row["value"] for row in rows]
    post["role_name"] = [row["role"] for row in rows]
    return post


# --- form <-> settings --------------------------------------------------------------------------

def test_the_form_shows_each_claims_sources_and_the_rules() -> None:
    shown = form_values(_stored(WRITTEN))
    assert shown["sources"] == {"email": "urn:oid:0.9.2342.19200300.100.1.3",
                                "name": "urn:oid:2.16.840.1.113730.3.1.241", "given_name": "",
                                "family_name": "", "groups": "", "tenant": ""}
    assert shown["roles_editable"] is True
    assert shown["roles"] == [{"match": "prefix", "value": "app-admin", "role": "admin"},
                              {"match": "regex", "value": "eng(ineering)?", "role": "developer"}]


def test_a_form_saved_unchanged_changes_nothing() -> None:
    stored = _stored(WRITTEN)
    assert settings_from_form(stored, _form_post(stored)) == stored


def test_a_form_save_changes_only_the_edited_fields() -> None:
    stored = _stored(WRITTEN)
    post = _form_post(stored)
    post["role_name"][1] = "engineer"                        # one rule's role
    post[source_field("groups")] = ["isMemberOf\n memberOf \n"]  # one claim's sources

    saved = settings_from_form(stored, post)

    expected = copy.deepcopy(stored)
    expected["mapping"]["roles"][1]["role"] = "engineer"
    expected["mapping"]["claims"]["groups"] = {"from": ["isMemberOf", "memberOf"]}
    assert saved == expected
    # The email's single-string source, its transforms, the name's default: as written.
    assert saved["mapping"]["claims"]["email"] == stored["mapping"]["claims"]["email"]


def test_values_written_with_spaces_stay_as_written_when_not_edited() -> None:
    stored = {"mapping": {"roles": [{"exact": " eng ", "role": "dev "}],
                          "claims": {"email": {"from": [" mail"]}}}}
    post = _form_post(stored)
    assert settings_from_form(stored, post) == stored
    post["role_name"][0] = "developer"
    assert settings_from_form(stored, post)["mapping"]["roles"] == [
        {"exact": "eng", "role": "developer"}]


def test_rows_are_added_and_removed() -> None:
    stored = _stored(WRITTEN)
    post = _form_post(stored)
    # The first rule removed (its row emptied, as without script), one added in the blank row.
    post["role_value"] = ["", "eng(ineering)?", "sales"]
    post["role_name"] = ["", "developer", "seller"]
    post["role_match"] = ["prefix", "regex", "exact"]
    assert settings_from_form(stored, post)["mapping"]["roles"] == [
        {"regex": "eng(ineering)?", "role": "developer"}, {"exact": "sales", "role": "seller"}]
    # Every rule removed: no rules at all.
    post = _form_post(stored)
    post["role_value"], post["role_name"], post["role_match"] = [], [], []
    assert "roles" not in settings_from_form(stored, post)["mapping"]


def test_emptied_sources_fall_back_to_the_preset_and_keep_the_rest_of_the_claim() -> None:
    stored = _stored(WRITTEN)
    post = _form_post(stored)
    post[source_field("email")] = [""]
    post[source_field("name")] = ["  "]
    claims = settings_from_form(stored, post)["mapping"]["claims"]
    assert claims["email"] == {"transforms": ["trim", "lower"]}
    assert claims["name"] == {"default": "Someone"}


def test_what_the_form_did_not_send_is_left_alone() -> None:
    stored = _stored(WRITTEN)
    # The common settings only (an older page, or a client posting just those).
    post = {key: value for key, value in _form_post(stored).items()
            if key in ("preset", "clock_skew_seconds", "sign_requests",
                       "insecure_allow_sha1_until")}
    assert settings_from_form(stored, post) == stored


def test_rules_of_a_shape_the_form_cannot_show_are_left_to_the_toml() -> None:
    stored = {"mapping": {"roles": [{"exact": "a", "prefix": "b", "role": "x"}]}}
    shown = form_values(stored)
    assert shown["roles_editable"] is False and shown["roles"] == []
    post = {ROLE_RULES_FIELD: ["1"], "role_match": ["exact"], "role_value": ["c"],
            "role_name": ["y"], "preset": [""]}
    assert settings_from_form(stored, post) == stored


# --- through the page ---------------------------------------------------------------------------

def _saved(admin: Admin) -> dict[str, Any]:  # noqa: F811
    return dict(admin.client.get(f"/admin/api/idps/{SLUG}").get_json()["settings"])


def _toml_box(admin: Admin) -> dict[str, Any]:  # noqa: F811
    page = admin.page(f"/admin/idps/{SLUG}")
    return tomllib.loads(page.get_element_by_id("settings-json").text or "")


def _post_form(admin: Admin, path: str, post: dict[str, list[str]],  # noqa: F811
               **headers: str):  # type: ignore[no-untyped-def]
    return admin.client.post(path, data={"csrf_token": admin.csrf, **post}, headers=headers)


def test_a_form_save_through_the_page_keeps_the_toml_but_the_edited_rule(
        admin: Admin) -> None:  # noqa: F811
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings", settings_text=WRITTEN).status_code == 303
    before = _toml_box(admin)
    post = _form_post(_saved(admin))
    post["role_value"][0] = "app-owner"

    saved = _post_form(admin, f"/admin/idps/{SLUG}/settings/common", post)

    assert saved.status_code == 303, saved.get_data(as_text=True)
    after = _toml_box(admin)
    assert after["mapping"]["roles"][0] == {"prefix": "app-owner", "role": "admin"}
    after["mapping"]["roles"][0]["prefix"] = "app-admin"
    assert after == before
    # The form shows it too.
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.xpath("//tbody[@id='role-rules']//input[@name='role_value']/@value")[:2] == [
        "app-owner", "eng(ineering)?"]


def test_a_bad_rule_from_the_form_is_refused_as_in_toml_and_nothing_is_lost(
        admin: Admin) -> None:  # noqa: F811
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings", settings_text=WRITTEN).status_code == 303
    before = _saved(admin)
    post = _form_post(before)
    post["role_match"][2], post["role_value"][2], post["role_name"][2] = "regex", "(", "broken"

    refused = _post_form(admin, f"/admin/idps/{SLUG}/settings/common", post)

    assert refused.status_code == 422
    problems = html.fromstring(refused.get_data(as_text=True)).xpath(
        "//div[@id='problems']//li/text()")
    # The same problem, at the same place, as the TOML with that rule gets.
    as_toml = admin.post(f"/admin/idps/{SLUG}/settings", settings_text=WRITTEN + (
        '\n[[mapping.roles]]\nregex = "("\nrole = "broken"\n'))
    assert as_toml.status_code == 422
    assert problems == html.fromstring(as_toml.get_data(as_text=True)).xpath(
        "//div[@id='problems']//li/text()")
    assert problems[0].startswith("IdP other settings: mapping.roles[2].regex: not a valid")
    assert _saved(admin) == before
    # The refused form still shows what was typed.
    page = html.fromstring(refused.get_data(as_text=True))
    assert page.xpath("//tbody[@id='role-rules']//input[@name='role_value']/@value")[2] == "("


def _preview(admin: Admin, post: dict[str, list[str]] | None = None,  # noqa: F811
             **fields: str):  # type: ignore[no-untyped-def]
    form = _form_post(_saved(admin)) if post is None else post
    return _post_form(admin, f"/admin/idps/{SLUG}/settings/preview",
                      {**form, **{k: [v] for k, v in fields.items()}},
                      Accept="application/json")


def test_the_preview_needs_an_admin_session_and_its_csrf_token(
        admin: Admin, client: FlaskClient) -> None:  # noqa: F811
    admin.draft("shibboleth")
    path = f"/admin/idps/{SLUG}/settings/preview"
    forged = client.post(path, data={"csrf_token": "not-the-token", "preset": "okta"},
                         headers={"Accept": "application/json"})
    assert forged.status_code == 403 and forged.get_json()["code"] == "admin_csrf_invalid"
    missing = client.post(path, data={"preset": "okta"}, headers={"Accept": "application/json"})
    assert missing.status_code == 403 and missing.get_json()["code"] == "admin_csrf_invalid"
    # A forged save of a rule that would make anyone an admin: refused, nothing changed.
    forged_save = client.post(f"/admin/idps/{SLUG}/settings/common", data={
        "csrf_token": "not-the-token", "preset": "shibboleth", ROLE_RULES_FIELD: "1",
        "role_match": "regex", "role_value": ".*", "role_name": "bridge-admin"})
    assert forged_save.status_code == 403 and b"admin_csrf_invalid" in forged_save.data
    assert _saved(admin) == {"display_name": "Contoso", "mapping": {"preset": "shibboleth"}}
    client.delete_cookie("__Host-bridge-admin")
    stranger = client.post(path, data={"preset": "okta"})
    assert stranger.status_code in (302, 303) and "/admin/login" in stranger.headers["Location"]


def test_without_a_test_login_the_preview_says_how_to_get_one(
        admin: Admin, session_other_idp: DevIdp) -> None:  # noqa: F811
    admin.draft("shibboleth")
    draft = _preview(admin)
    assert draft.status_code == 200 and draft.get_json()["outcome"] == "no_test_login"
    assert "Add the IdP's metadata" in draft.get_json()["message"]
    admin.add_metadata(session_other_idp)
    untested = _preview(admin)
    assert untested.status_code == 200 and untested.get_json()["outcome"] == "no_test_login"
    assert "Test a login" in untested.get_json()["message"]


@pytest.mark.parametrize("change,problem", [
    ({"role_match": "regex", "role_value": "(", "role_name": "x"},
     "IdP other settings: mapping.roles[0].regex: not a valid regular expression"),
    ({"role_match": "exact", "role_value": "sales", "role_name": ""},
     "IdP other settings: mapping.roles[0].role: required, the role name"),
    ({"role_match": "glob", "role_value": "sales*", "role_name": "x"},
     "IdP other settings: mapping.roles[0].glob: unknown setting (exact, prefix, regex)"),
    ({"clock_skew_seconds": "ninety"}, "clock_skew_seconds: a whole number of seconds"),
    ({"settings_text": "mapping = 3"}, "IdP other settings: mapping: must be a table"),
    ({"settings_text": "clock_skew_seconds 9"}, "settings: not valid TOML"),
])
def test_bad_settings_in_the_preview_get_the_problems_a_save_gets(
        admin: Admin, session_other_idp: DevIdp, change: dict[str, str],  # noqa: F811
        problem: str) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    before = _saved(admin)
    refused = _preview(admin, **change)
    assert refused.status_code == 422, refused.get_data(as_text=True)
    body = refused.get_json()
    assert body["outcome"] == "invalid" and body["problems"][0].startswith(problem), body
    assert _saved(admin) == before


def test_the_preview_of_an_unknown_idp_is_not_found(admin: Admin) -> None:  # noqa: F811
    missing = _post_form(admin, "/admin/idps/nobody/settings/preview", {"preset": ["okta"]},
                         Accept="application/json")
    assert missing.status_code == 404 and missing.get_json()["code"] == "idp_unknown"


def _test_login(admin: Admin, browser: Browser, idp: DevIdp, user: str) -> dict[str, Any]:  # noqa: F811
    started = admin.client.get(f"/admin/idps/{SLUG}/test-login")
    assert started.status_code == 302, started.get_data(as_text=True)
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answered = browser.post_acs(idp.response_for(idp.parse_request(saml_request, None),
                                                 USERS[user]), SLUG, json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    test_id = urlsplit(answered.headers["Location"]).path.rsplit("/", 1)[1]
    result = admin.client.get(f"/admin/api/test-logins/{test_id}").get_json()["result"]
    assert result["outcome"] == "accepted", result
    return dict(result)


def test_the_preview_is_what_a_test_login_and_a_real_login_then_produce(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, client: FlaskClient,  # noqa: F811
        bridge: Services) -> None:
    idp = session_other_idp  # eduPerson (urn:oid:) names; alice is in engineering, bridge-admins
    admin.draft("shibboleth")
    admin.add_metadata(idp)
    assert admin.post(f"/admin/idps/{SLUG}/settings", settings_text=(
        '[mapping]\npreset = "shibboleth"\n[authn_contexts]\npreset = "shibboleth"\n'
    )).status_code == 303
    first = _test_login(admin, browser, idp, "alice")
    # Unchanged settings: the preview is the test login's own result.
    same = _preview(admin).get_json()
    assert same["outcome"] == "accepted" and same["claims"] == first["in_force"]
    assert same["claims"]["v2"]["claims"]["acr"]  # its authentication level, as a login's

    post = _form_post(_saved(admin))
    post["role_match"], post["role_value"], post["role_name"] = (
        ["prefix", "exact"], ["bridge-", "engineering"], ["admin", "developer"])
    post[source_field("name")] = ["urn:oid:2.5.4.42"]  # the given name as the name
    preview = _preview(admin, post)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    body = preview.get_json()
    assert body["outcome"] == "accepted"
    assert body["claims"]["v2"]["claims"]["roles"] == ["admin", "developer"]
    assert body["claims"]["v1"]["claims"]["name"] == "Alice"
    assert _saved(admin)["mapping"] == {"preset": "shibboleth"}  # nothing saved

    saved = _post_form(admin, f"/admin/idps/{SLUG}/settings/common", post)
    assert saved.status_code == 303, saved.get_data(as_text=True)
    second = _test_login(admin, browser, idp, "alice")
    assert second["in_force"] == body["claims"]
    assert _preview(admin).get_json()["claims"] == body["claims"]

    # A real login with the saved settings mints exactly the claims the preview showed.
    assert admin.post(f"/admin/idps/{SLUG}/go-live").status_code == 303
    user = Browser(client, idp, bridge)
    login = user.start(idp=SLUG)
    code = user.code_from(user.post_acs(user.signed_response(login, "alice"), SLUG), login)
    assert code
    with bridge.db.transaction() as session:
        [minted] = [json.loads(row.claims_json) for row in session.scalars(
            select(AuthorizationCode).where(AuthorizationCode.idp_slug == SLUG))]
    assert minted == body["claims"][f"v{minted['ver']}"]["claims"]


def test_the_preview_uses_the_last_test_login_kept_past_the_test_logins_purge(
        admin: Admin, browser: Browser, session_other_idp: DevIdp,  # noqa: F811
        bridge: Services) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    _test_login(admin, browser, session_other_idp, "alice")
    last = _test_login(admin, browser, session_other_idp, "bob")
    clock = bridge.clock
    clock.advance(3600)  # type: ignore[attr-defined]  # past a test login's 15 minutes
    purge_expired(bridge.db, now=clock.now())
    with bridge.db.transaction() as session:
        assert session.query(TestLogin).count() == 1  # the last one only
    body = _preview(admin).get_json()
    assert body["outcome"] == "accepted"
    assert body["claims"] == last["in_force"] and body["claims"]["v1"]["claims"]["email"] == (
        "bob@example.com")
    clock.advance(LAST_TEST_LOGIN_SECONDS)  # type: ignore[attr-defined]
    purge_expired(bridge.db, now=clock.now())
    admin = Admin(admin.client, bridge)  # the admin session ended meanwhile  # noqa: F811
    assert _preview(admin).get_json()["outcome"] == "no_test_login"


def test_a_preview_whose_settings_would_refuse_the_login_says_so(
        admin: Admin, browser: Browser, session_other_idp: DevIdp) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    _test_login(admin, browser, session_other_idp, "alice")
    # The subject from an attribute the login did not carry: refused, as that login would be.
    body = _preview(admin, settings_text=(
        'subject_attribute = "employeeNumber"\n[mapping]\npreset = "shibboleth"\n')).get_json()
    assert body["outcome"] == "refused" and body["code"] == "saml_subject_missing"
    assert "saml_subject_missing" in body["message"]


# --- a page loaded before another admin's change ------------------------------------------------

def _page_form(page: html.HtmlElement, form_id: str = "settings-form") -> dict[str, list[str]]:
    """What a form of the IdP page posts, as a browser without script submits it."""
    [form] = page.xpath(f"//form[@id='{form_id}']")
    posted: dict[str, list[str]] = {}
    for name, value in form.form_values():
        posted.setdefault(name, []).append(value)
    return posted


WITH_ADMIN_RULE = '''display_name = "Contoso"
[mapping]
preset = "shibboleth"

[[mapping.roles]]
exact = "engineering"
role = "developer"

[[mapping.roles]]
regex = ".*"
role = "bridge-admin"
'''

WITHOUT_ADMIN_RULE = '''display_name = "Contoso"
[mapping]
preset = "shibboleth"

[[mapping.roles]]
exact = "engineering"
role = "developer"
'''

SETTINGS_CHANGED = "the settings changed since this page was loaded"


def test_a_form_loaded_before_another_admins_change_does_not_undo_it(
        admin: Admin, app: Flask, bridge: Services) -> None:  # noqa: F811
    """A save that changed only the clock skew, from a page showing a rule (everyone an admin
    of the bridge) another admin removed since: refused, nothing saved, the typed value kept."""
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings",
                      settings_text=WITH_ADMIN_RULE).status_code == 303
    form_of_a = _page_form(admin.page(f"/admin/idps/{SLUG}"))
    assert form_of_a["role_value"][:2] == ["engineering", ".*"]
    assert form_of_a[FINGERPRINT_FIELD][0]

    other = Admin(app.test_client(), bridge)
    assert other.post(f"/admin/idps/{SLUG}/settings",
                      settings_text=WITHOUT_ADMIN_RULE).status_code == 303
    after_b = _saved(admin)
    assert [r["role"] for r in after_b["mapping"]["roles"]] == ["developer"]

    form_of_a["clock_skew_seconds"] = ["120"]
    saved = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data=form_of_a)

    assert saved.status_code == 409, saved.get_data(as_text=True)
    page = html.fromstring(saved.get_data(as_text=True))
    problems = page.xpath("//div[@id='problems']//li/text()")
    assert any(SETTINGS_CHANGED in problem and "Reload" in problem for problem in problems)
    assert _saved(admin) == after_b  # nothing saved
    # What A typed is still on the page, with the fingerprint it was typed against: saving it
    # again is refused again, until the page is reloaded.
    shown = _page_form(page)
    assert shown["clock_skew_seconds"] == ["120"]
    assert shown[FINGERPRINT_FIELD] == form_of_a[FINGERPRINT_FIELD]
    again = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data=shown)
    assert again.status_code == 409 and _saved(admin) == after_b
    # Reloaded: the change is made onto what B saved.
    reloaded = _page_form(admin.page(f"/admin/idps/{SLUG}"))
    reloaded["clock_skew_seconds"] = ["120"]
    assert admin.client.post(f"/admin/idps/{SLUG}/settings/common",
                             data=reloaded).status_code == 303
    assert _saved(admin) == {**after_b, "clock_skew_seconds": 120}


def test_a_form_loaded_before_another_admins_change_does_not_undo_its_sources(
        admin: Admin, app: Flask, bridge: Services) -> None:  # noqa: F811
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings", settings_text=(
        '[mapping]\npreset = "shibboleth"\n[mapping.claims.email]\nfrom = ["mail"]\n'
    )).status_code == 303
    form_of_a = _page_form(admin.page(f"/admin/idps/{SLUG}"))

    other = Admin(app.test_client(), bridge)
    assert other.post(f"/admin/idps/{SLUG}/settings", settings_text=(
        '[mapping]\npreset = "shibboleth"\n[mapping.claims.email]\nfrom = ["verifiedMail"]\n'
    )).status_code == 303

    form_of_a["sign_requests"] = ["always"]  # the only field A edits
    saved = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data=form_of_a)
    assert saved.status_code == 409, saved.get_data(as_text=True)
    assert _saved(admin)["mapping"]["claims"]["email"]["from"] == ["verifiedMail"]
    assert "sign_requests" not in _saved(admin)


def test_a_toml_box_loaded_before_another_admins_change_does_not_undo_it(
        admin: Admin, app: Flask, bridge: Services) -> None:  # noqa: F811
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings",
                      settings_text=WITH_ADMIN_RULE).status_code == 303
    box_of_a = _page_form(admin.page(f"/admin/idps/{SLUG}"), "settings")
    other = Admin(app.test_client(), bridge)
    assert other.post(f"/admin/idps/{SLUG}/settings",
                      settings_text=WITHOUT_ADMIN_RULE).status_code == 303
    after_b = _saved(admin)

    typed = "clock_skew_seconds = 120\n" + box_of_a["settings_text"][0]
    saved = admin.client.post(f"/admin/idps/{SLUG}/settings",
                              data={**box_of_a, "settings_text": [typed]})

    assert saved.status_code == 409, saved.get_data(as_text=True)
    page = html.fromstring(saved.get_data(as_text=True))
    assert any(SETTINGS_CHANGED in p for p in page.xpath("//div[@id='problems']//li/text()"))
    assert _saved(admin) == after_b
    assert page.get_element_by_id("settings-json").text == typed  # as typed
    assert _page_form(page, "settings")[FINGERPRINT_FIELD] == box_of_a[FINGERPRINT_FIELD]


# --- posts of some fields only ------------------------------------------------------------------

COMMON_WRITTEN = '''display_name = "Contoso"
clock_skew_seconds = 120
sign_requests = "always"
insecure_allow_sha1_until = 2027-06-30
[mapping]
preset = "entra"
'''


def test_a_post_of_the_rule_rows_only_keeps_the_common_settings(
        admin: Admin) -> None:  # noqa: F811
    """Decision 29: a field not sent keeps what was written; the preset too (it names the
    vendor's stable identifier: losing it would change every user's sub)."""
    admin.draft("entra")
    assert admin.post(f"/admin/idps/{SLUG}/settings",
                      settings_text=COMMON_WRITTEN).status_code == 303
    before = _saved(admin)

    saved = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data={
        "csrf_token": admin.csrf, "role_rules": "1", "role_match": "exact",
        "role_value": "engineering", "role_name": "developer"})

    assert saved.status_code == 303, saved.get_data(as_text=True)
    after = _saved(admin)
    assert after["mapping"]["roles"] == [{"exact": "engineering", "role": "developer"}]
    kept = {key: after.get(key) for key in ("clock_skew_seconds", "sign_requests",
                                            "insecure_allow_sha1_until")}
    assert kept == {"clock_skew_seconds": 120, "sign_requests": "always",
                    "insecure_allow_sha1_until": "2027-06-30"}, (before, after)
    assert after["mapping"].get("preset") == "entra", after


# --- values shown as stored ---------------------------------------------------------------------

def test_a_clock_skew_of_zero_survives_a_form_save_of_a_rule(admin: Admin) -> None:  # noqa: F811
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings", settings_text=(
        'clock_skew_seconds = 0\n[mapping]\npreset = "shibboleth"\n')).status_code == 303
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.get_element_by_id("form-clock-skew").get("value") == "0"
    posted = _page_form(page)
    posted["role_value"], posted["role_name"] = ["engineering"], ["developer"]

    saved = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data=posted)

    assert saved.status_code == 303, saved.get_data(as_text=True)
    after = _saved(admin)
    assert after["mapping"]["roles"] == [{"exact": "engineering", "role": "developer"}]
    assert after.get("clock_skew_seconds") == 0, after


def test_a_sha1_exception_in_another_iso_form_is_shown_as_a_date_and_kept(
        admin: Admin) -> None:  # noqa: F811
    """The admin API takes any ISO date form date.fromisoformat() reads ("20270630"); the page's
    date field shows it as 2027-06-30 (the one form a date input keeps), and a save that did not
    edit it keeps it as stored."""
    admin.draft("shibboleth")
    put = admin.client.put(f"/admin/api/idps/{SLUG}/settings", json={
        "display_name": "Contoso", "mapping": {"preset": "shibboleth"},
        "insecure_allow_sha1_until": "20270630"}, headers={"X-CSRF-Token": admin.csrf})
    assert put.status_code == 200, put.get_data(as_text=True)
    page = admin.page(f"/admin/idps/{SLUG}")
    assert page.get_element_by_id("form-sha1-until").get("value") == "2027-06-30"
    posted = _page_form(page)
    posted["role_value"], posted["role_name"] = ["engineering"], ["developer"]
    assert admin.client.post(f"/admin/idps/{SLUG}/settings/common",
                             data=posted).status_code == 303
    assert _saved(admin)["insecure_allow_sha1_until"] == "20270630"
    # Edited, it is written as the field gives it.
    posted = _page_form(admin.page(f"/admin/idps/{SLUG}"))
    posted["insecure_allow_sha1_until"] = ["2027-12-31"]
    assert admin.client.post(f"/admin/idps/{SLUG}/settings/common",
                             data=posted).status_code == 303
    assert _saved(admin)["insecure_allow_sha1_until"] == "2027-12-31"


def test_editing_one_rule_leaves_the_other_rules_as_written(admin: Admin) -> None:  # noqa: F811
    """``prefix = "Admins "`` gives the role to "Admins Europe" but not to "Administrators":
    editing another rule's role keeps it as written."""
    admin.draft("shibboleth")
    assert admin.post(f"/admin/idps/{SLUG}/settings", settings_text=(
        '[mapping]\npreset = "shibboleth"\n'
        '[[mapping.roles]]\nprefix = "Admins "\nrole = "operator"\n'
        '[[mapping.roles]]\nexact = "sales"\nrole = "seller"\n')).status_code == 303
    posted = _page_form(admin.page(f"/admin/idps/{SLUG}"))
    assert posted["role_value"][:2] == ["Admins ", "sales"]  # the browser sends it as shown
    posted["role_name"][1] = "sales-rep"  # the only edit

    saved = admin.client.post(f"/admin/idps/{SLUG}/settings/common", data=posted)

    assert saved.status_code == 303, saved.get_data(as_text=True)
    roles = _saved(admin)["mapping"]["roles"]
    assert roles == [{"prefix": "Admins ", "role": "operator"},
                     {"exact": "sales", "role": "sales-rep"}], roles


def test_rules_not_edited_stay_as_written_when_others_are_removed_or_moved() -> None:
    stored = {"mapping": {"roles": [{"exact": "a", "role": "x"},
                                    {"prefix": "Admins ", "role": "operator"},
                                    {"regex": " b ", "role": "y"}]}}
    post = _form_post(stored)
    # The first row emptied, the last two swapped (as posted by the page's script).
    post["role_match"] = ["exact", "regex", "prefix", "exact"]
    post["role_value"] = ["", " b ", "Admins ", ""]
    post["role_name"] = ["", "y", "operator", ""]
    assert settings_from_form(stored, post)["mapping"]["roles"] == [
        {"regex": " b ", "role": "y"}, {"prefix": "Admins ", "role": "operator"}]


# --- kept test logins ---------------------------------------------------------------------------

def _test_login_id(admin: Admin, browser: Browser, idp: DevIdp, user: str) -> str:  # noqa: F811
    started = admin.client.get(f"/admin/idps/{SLUG}/test-login")
    assert started.status_code == 302, started.get_data(as_text=True)
    saml_request = parse_qs(urlsplit(started.headers["Location"]).query)["SAMLRequest"][0]
    answered = browser.post_acs(idp.response_for(idp.parse_request(saml_request, None),
                                                 USERS[user]), SLUG, json=False)
    assert answered.status_code in (302, 303), answered.get_data(as_text=True)
    return urlsplit(answered.headers["Location"]).path.rsplit("/", 1)[1]


def test_deleting_an_idp_deletes_the_test_login_kept_for_its_preview(
        admin: Admin, browser: Browser, session_other_idp: DevIdp, app: Flask,  # noqa: F811
        bridge: Services) -> None:
    """What arrived (attributes, NameID) goes with the IdP, in the deletion itself: another
    admin who finds its id in the audit trail reads nothing, with no purge run."""
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    kept = _test_login_id(admin, browser, session_other_idp, "alice")
    deleted = admin.post(f"/admin/idps/{SLUG}/delete", confirm_slug=SLUG)
    assert deleted.status_code == 303, deleted.get_data(as_text=True)
    with bridge.db.transaction() as session:
        assert session.query(TestLogin).filter_by(slug=SLUG).count() == 0

    other = Admin(app.test_client(), bridge)
    events = other.client.get("/admin/api/audit?limit=200").get_json()["events"]
    assert kept in [e["detail"].get("test") for e in events if e["event"] == "test_login_started"]
    [gone] = [e for e in events if e["event"] == "idp_deleted"]
    assert gone["detail"]["test_logins_deleted"] == 1
    answer = other.client.get(f"/admin/api/test-logins/{kept}")
    assert answer.status_code == 404, answer.get_json()
    assert other.client.get(f"/admin/test-logins/{kept}").status_code == 404


def test_an_expired_test_login_is_not_served_by_id_before_any_purge(
        admin: Admin, browser: Browser, session_other_idp: DevIdp,  # noqa: F811
        bridge: Services) -> None:
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    first = _test_login_id(admin, browser, session_other_idp, "alice")
    last = _test_login_id(admin, browser, session_other_idp, "bob")  # the kept one from now on
    # Superseded: not served, though no purge has run.
    assert admin.client.get(f"/admin/api/test-logins/{first}").status_code == 404
    assert admin.client.get(f"/admin/api/test-logins/{last}").status_code == 200
    bridge.clock.advance(3600)  # type: ignore[attr-defined]
    assert admin.client.get(f"/admin/api/test-logins/{first}").status_code == 404
    assert admin.client.get(f"/admin/api/test-logins/{last}").status_code == 200
    # Past its seven days the kept one is not served either, nor previewed.
    bridge.clock.advance(LAST_TEST_LOGIN_SECONDS)  # type: ignore[attr-defined]
    admin = Admin(admin.client, bridge)  # the admin session ended meanwhile  # noqa: F811
    assert admin.client.get(f"/admin/api/test-logins/{last}").status_code == 404
    assert _preview(admin).get_json()["outcome"] == "no_test_login"
    # A test login started and never finished: not served after its fifteen minutes.
    started = admin.client.get(f"/admin/idps/{SLUG}/test-login")
    assert started.status_code == 302
    with bridge.db.transaction() as session:
        pending = session.query(TestLogin).filter(TestLogin.completed_at.is_(None)).one().id
    assert admin.client.get(f"/admin/api/test-logins/{pending}").status_code == 200
    bridge.clock.advance(901)  # type: ignore[attr-defined]
    admin = Admin(admin.client, bridge)  # noqa: F811
    assert admin.client.get(f"/admin/api/test-logins/{pending}").status_code == 404


# --- what checking settings may cost ------------------------------------------------------------

# Generous for one admin request on a shared CI core: without the limits, 400 rules near RE2's
# step cap took about 9 s (and a body at its limit, minutes and GBs).
BUDGET_SECONDS = 3.0


def _heavy_rules(count: int, pattern: str = "[\\\\w.-]{{1,37}}{i}") -> str:
    # [\w.-]{1,37} is about 49,800 RE2 steps (the per-pattern cap is 50,000); each distinct.
    return "".join(f'[[mapping.roles]]\nregex = "{pattern.format(i=i)}"\nrole = "r{i}"\n'
                   for i in range(count))


def _timed_preview(admin: Admin, text: str) -> tuple[Any, float]:  # noqa: F811
    started = time.perf_counter()
    answer = admin.client.post(f"/admin/idps/{SLUG}/settings/preview", data={
        "csrf_token": admin.csrf, "settings_text": text}, headers={"Accept": "application/json"})
    return answer, time.perf_counter() - started


def test_more_role_rules_than_the_limit_are_refused_before_compiling_any(
        admin: Admin, session_other_idp: DevIdp) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    before = _saved(admin)
    text = '[mapping]\npreset = "shibboleth"\n' + _heavy_rules(2 * MAX_ROLE_RULES)
    assert len(text) < 25_000  # far below the body limit
    preview, elapsed = _timed_preview(admin, text)
    assert preview.status_code == 422
    assert preview.get_json()["problems"] == [
        f"IdP other settings: mapping.roles: {2 * MAX_ROLE_RULES} rules, at most "
        f"{MAX_ROLE_RULES}; match several groups with one prefix or regex rule"]
    assert elapsed < BUDGET_SECONDS, f"{elapsed:.1f} s"
    # A save (page or admin API) gets the same refusal; nothing is saved.
    saved = admin.post(f"/admin/idps/{SLUG}/settings", settings_text=text)
    assert saved.status_code == 422 and _saved(admin) == before


def test_patterns_within_the_rule_limit_stop_compiling_at_the_step_budget(
        admin: Admin, session_other_idp: DevIdp) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    preview, elapsed = _timed_preview(admin, _heavy_rules(MAX_ROLE_RULES))
    assert preview.status_code == 422, preview.get_data(as_text=True)
    problems = preview.get_json()["problems"]
    assert len(problems) <= MAX_PROBLEMS + 1
    assert f"at most {MAX_PATTERN_STEPS:,} for one IdP" in problems[0]
    assert problems[0].startswith("IdP other settings: mapping.roles[11].regex: not compiled")
    assert elapsed < BUDGET_SECONDS, f"{elapsed:.1f} s"


def test_patterns_refused_for_their_size_stop_compiling_too(
        admin: Admin, session_other_idp: DevIdp) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    # \w{1,100} is refused (134,403 steps) only after RE2 has compiled it (~0.1 s each).
    preview, elapsed = _timed_preview(admin, _heavy_rules(150, "\\\\w{{1,100}}{i}"))
    assert preview.status_code == 422
    assert len(preview.get_json()["problems"]) <= MAX_PROBLEMS + 1
    assert elapsed < BUDGET_SECONDS, f"{elapsed:.1f} s"


def test_too_much_pattern_text_is_refused_with_its_location(
        admin: Admin, session_other_idp: DevIdp) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    long = "a" * 250
    settings = {"mapping": {
        "groups": {"allow": [{"regex": f"{long}{i}"} for i in range(40)]},
        "claims": {"email": {"transforms": [{"regex_extract": f"{long}{i}"}
                                            for i in range(40)]}}}}
    put = admin.client.put(f"/admin/api/idps/{SLUG}/settings", json=settings,
                           headers={"X-CSRF-Token": admin.csrf})
    assert put.status_code == 422, put.get_data(as_text=True)
    text = 2 * sum(len(f"{long}{i}") for i in range(40))
    assert put.get_json()["problems"] == [
        f"IdP other settings: mapping: its regular expressions come to {text:,} characters, "
        f"at most {MAX_PATTERN_TEXT:,} for one IdP"]


def test_settings_within_the_limits_are_accepted() -> None:
    text = "".join(f'[[mapping.roles]]\nregex = "^app-{i}-(admin|ops)$"\nrole = "r{i}"\n'
                   for i in range(MAX_ROLE_RULES))
    parsed = parse_idp_settings(tomllib.loads(text), source="IdP test settings")
    assert len(parsed.mapping.roles) == MAX_ROLE_RULES


# --- strings that are not Unicode text ----------------------------------------------------------

@pytest.mark.parametrize("settings_text", [
    '{"mapping": {"roles": [{"regex": "\\ud800", "role": "x"}]}}',
    '{"mapping": {"claims": {"email": {"transforms": [{"regex_extract": "\\ud800"}]}}}}',
])
def test_an_unpaired_surrogate_in_a_pattern_is_refused_by_the_preview(
        admin: Admin, session_other_idp: DevIdp, settings_text: str) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    preview = admin.client.post(f"/admin/idps/{SLUG}/settings/preview", data={
        "csrf_token": admin.csrf, "settings_text": settings_text},
        headers={"Accept": "application/json"})
    assert preview.status_code == 422, preview.get_data(as_text=True)
    assert preview.get_json()["outcome"] == "invalid"


@pytest.mark.parametrize("settings_text", [
    '{"mapping": {"preset": "shibboleth", "roles": [{"exact": "\\ud800", "role": "x"}]}}',
    '{"mapping": {"claims": {"email": {"from": ["\\ud800"]}}}}',
    '{"display_name": "\\ud800"}',
])
def test_settings_with_an_unpaired_surrogate_leave_the_idp_page_working(
        admin: Admin, session_other_idp: DevIdp, settings_text: str) -> None:  # noqa: F811
    admin.draft("shibboleth")
    admin.add_metadata(session_other_idp)
    before = _saved(admin)
    saved = admin.post(f"/admin/idps/{SLUG}/settings", settings_text=settings_text)
    assert saved.status_code == 422, saved.get_data(as_text=True)
    assert _saved(admin) == before
    assert admin.client.get(f"/admin/idps/{SLUG}").status_code == 200


@pytest.mark.parametrize("stored", [
    {"display_name": "\ud800", "mapping": {"preset": "shibboleth"}},
    {"mapping": {"preset": "shibboleth", "roles": [{"exact": "\ud800", "role": "x"}]}},
    {"mapping": {"claims": {"email": {"from": ["\ud800"]}}}},
])
def test_an_unpaired_surrogate_stored_before_it_was_refused_never_makes_a_page_fail(
        admin: Admin, bridge: Services, stored: dict[str, Any]) -> None:  # noqa: F811
    admin.draft("shibboleth")
    with bridge.db.transaction() as session:
        record = session.get(IdpRecord, SLUG)
        assert record is not None
        record.settings_json = json.dumps(stored)  # as stored before JSON input was checked
    page = admin.client.get(f"/admin/idps/{SLUG}")
    assert page.status_code == 200
    assert "\ufffd" in page.get_data(as_text=True)  # shown replaced, never as it was
    assert admin.client.get("/admin/").status_code == 200
    assert admin.client.get(f"/admin/api/idps/{SLUG}").status_code == 200
    preview = _post_form(admin, f"/admin/idps/{SLUG}/settings/preview", {"preset": ["okta"]},
                         Accept="application/json")
    assert preview.status_code in (200, 422), preview.get_data(as_text=True)
