"""After migration 0019, two users whose names fold to one key are both kept, the later with its
old ``str.lower()`` key. Each must stay reachable by its IdP: found by a lookup of its own
userName (and only it), and written to by id (Okta's deactivating PATCH, a PUT that keeps the
name) so that the person it names is logged out and refused, and the other is not. A user
whose stored key an older rule computed (default-ignorable characters kept) is found and
written to as well, and its next write stores the key of today's rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from bridge.dev.saml_idp import DevIdp, User
from bridge.saml.subject import derive_subject
from bridge.store.db import Database
from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import Browser
from tests.provisioning.conftest import Scim
from tests.provisioning.scim_shapes import CORE, OKTA_DEACTIVATE
from tests.upgrades import row, upgraded_from

EARLIER = "strasse@example.com"
LATER = "Straße@example.com"  # lower(): straße@…, NFKC_Casefold: strasse@…, the EARLIER's key
LATER_PERSON = User("strasse2", "x", LATER, {"mail": ["s2@example.com"]})
EARLIER_PERSON = User("strasse1", "x", EARLIER, {"mail": ["s1@example.com"]})


@pytest.fixture
def database(upgrade_url: str, session_dev_idp: DevIdp) -> Iterator[Database]:
    """A database written by the release before 0019 (str.lower() keys), then upgraded."""
    users = [row("INSERT INTO scim_users (id, idp_slug, user_name_key, external_id, active, "
                 "subject, resource_json, version, created_at, updated_at) VALUES (:id, 'dev', "
                 ":key, NULL, :active, :subject, :resource, 1, 0, 0)",
                 id=user_id, key=user_name.lower(), active=True,
                 subject=derive_subject(session_dev_idp.entity_id, user_name),
                 resource=json.dumps({"schemas": [CORE], "userName": user_name, "active": True}))
             for user_id, user_name in (("u1", EARLIER), ("u2", LATER))]
    with upgraded_from(upgrade_url, "0018", users) as upgraded:
        yield upgraded


def _tokens(browser: Browser, person: User) -> dict[str, Any]:
    login = browser.start()
    code = browser.code_from(browser.post_acs(browser.idp.response_for(login.pending, person)),
                             login)
    exchanged = browser.exchange(code, login.verifier)
    assert exchanged.status_code == 200, exchanged.get_data(as_text=True)
    return dict(exchanged.get_json())


def _found(scim: Scim, filter_text: str) -> list[str]:
    answer = scim("GET", "/Users", query_string={"filter": filter_text})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [user["id"] for user in answer.get_json()["Resources"]]


def _active(client: FlaskClient, token: str) -> bool:
    introspected = client.post("/introspect", data={"token": token},
                               auth=("backend", CONFIDENTIAL_SECRET))
    return bool(introspected.get_json()["active"])


def _keys(database: Database) -> dict[str, str]:
    with database.engine.begin() as connection:
        rows = connection.execute(sa.text("SELECT id, user_name_key FROM scim_users"))
        return {row.id: row.user_name_key for row in rows}


def test_a_lookup_finds_each_twin_by_its_own_name(scim: Scim) -> None:
    for name in (LATER, LATER.lower(), "STRAßE@EXAMPLE.COM"):
        for filter_text in (f'userName eq "{name}"', f'userName eq "{name}" or userName eq "x"'):
            assert _found(scim, filter_text) == ["u2"], filter_text
    for name in (EARLIER, EARLIER.upper()):
        for filter_text in (f'userName eq "{name}"', f'userName eq "{name}" or userName eq "x"'):
            assert _found(scim, filter_text) == ["u1"], filter_text


def test_okta_can_deactivate_the_later_twin_and_only_it(
        scim: Scim, browser: Browser, client: FlaskClient, database: Database) -> None:
    later = _tokens(browser, LATER_PERSON)
    earlier = _tokens(browser, EARLIER_PERSON)
    answer = scim("PATCH", "/Users/u2", OKTA_DEACTIVATE)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["active"] is False
    assert not _active(client, later["access_token"])
    assert _active(client, earlier["access_token"])
    assert _keys(database) == {"u1": EARLIER, "u2": LATER.lower()}  # kept: the new one is u1's


def test_a_put_that_keeps_the_name_succeeds_and_a_rename_settles_the_key(
        scim: Scim, database: Database) -> None:
    kept = scim("PUT", "/Users/u2", {"schemas": [CORE], "userName": LATER, "active": True,
                                     "displayName": "Later"})
    assert kept.status_code == 200, kept.get_data(as_text=True)
    # A rename to the other twin's name, in any spelling, is still a conflict.
    for name in (EARLIER, "STRASSE@example.com"):
        taken = scim("PUT", "/Users/u2", {"schemas": [CORE], "userName": name})
        assert taken.status_code == 409 and taken.get_json()["scimType"] == "uniqueness"
    renamed = scim("PUT", "/Users/u2", {"schemas": [CORE], "userName": "s2@example.com"})
    assert renamed.status_code == 200
    assert _keys(database) == {"u1": EARLIER, "u2": "s2@example.com"}


def test_a_key_with_invisible_characters_is_found_and_written_under_todays_rule(
        scim: Scim, database: Database) -> None:
    name = "car\u00adol@example.com"
    with database.engine.begin() as connection:  # stored by the rule before: SOFT HYPHEN kept
        connection.execute(sa.text(
            "INSERT INTO scim_users (id, idp_slug, user_name_key, external_id, active, subject, "
            "resource_json, version, created_at, updated_at) VALUES ('u3', 'dev', :key, NULL, "
            ":active, NULL, :resource, 1, 0, 0)"),
            {"key": name, "active": True,
             "resource": json.dumps({"schemas": [CORE], "userName": name, "active": True})})
    assert _found(scim, f'userName eq "{name}"') == ["u3"]
    assert scim("PATCH", "/Users/u3", OKTA_DEACTIVATE).status_code == 200
    assert _keys(database)["u3"] == "carol@example.com"
    assert scim("POST", "/Users", {"schemas": [CORE], "userName": "carol@example.com"}
                ).status_code == 409
