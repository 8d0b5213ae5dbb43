"""Two people of one IdP whose login names differ but fold to one NFKC_Casefold key (here
``kelvin@example.com`` and the same name spelt with KELVIN SIGN, U+212A). A login's ``sub`` is
derived from the exact name, so the two are two people to the bridge's logins.

The flow is Entra ID's: before it creates a user it looks the userName up, and when the lookup
returns a user it links its person to that record and sends every later change there. So a
lookup must never answer a look-alike's name with another person's record (decision 23): the
look-alike's lookup finds nobody, its create is a conflict the IdP reports to its admin, and
nothing the IdP then does for the look-alike reaches the first person. The same holds for a
name that differs from another only by characters drawn as nothing (a soft hyphen, a zero-width
space): one name for uniqueness, another name for lookups."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge.dev.saml_idp import User
from bridge.services import Services
from bridge.store.models import DeprovisionedSubject, ScimUser
from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import Browser
from tests.provisioning.conftest import Scim
from tests.provisioning.scim_shapes import entra_user

VICTIM = User("kelvin", "x", "kelvin@example.com", {"mail": ["kelvin@example.com"]})
LOOK_ALIKE = User("kelvin2", "x", "\u212aelvin@example.com", {"mail": ["k2@example.com"]})


def _tokens(browser: Browser, person: User) -> dict[str, Any]:
    login = browser.start()
    response = browser.post_acs(browser.idp.response_for(login.pending, person))
    code = browser.code_from(response, login)
    exchanged = browser.exchange(code, login.verifier)
    assert exchanged.status_code == 200, exchanged.get_data(as_text=True)
    return dict(exchanged.get_json())


def _active(client: FlaskClient, token: str) -> bool:
    answer = client.post("/introspect", data={"token": token},
                         auth=("backend", CONFIDENTIAL_SECRET))
    return bool(answer.get_json()["active"])


def _found(scim: Scim, filter_text: str) -> list[str]:
    answer = scim("GET", "/Users", query_string={"filter": filter_text})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [user["userName"] for user in answer.get_json()["Resources"]]


def test_a_look_alike_is_never_linked_to_another_persons_user(
        scim: Scim, browser: Browser, client: FlaskClient, bridge: Services) -> None:
    created = scim("POST", "/Users", entra_user(VICTIM.persistent_id, "victim"))
    assert created.status_code == 201
    victim = _tokens(browser, VICTIM)
    with bridge.db.transaction() as session:
        before = [(u.id, u.user_name_key, u.resource_json, u.active)
                  for u in session.query(ScimUser)]

    # The IdP provisions its second person: its lookup finds nobody, by any filter...
    name = LOOK_ALIKE.persistent_id
    for filter_text in (f'userName eq "{name}"', f'userName eq "{name}" or userName eq "x"',
                        f'userName eq "{name}" and active eq true', 'userName sw "\u212a"',
                        'userName co "\u212aelvin"'):
        assert _found(scim, filter_text) == [], filter_text
    # ... and its create is refused as a duplicate, which the IdP shows its admin.
    again = scim("POST", "/Users", entra_user(name, "look-alike"))
    assert again.status_code == 409
    assert again.get_json()["scimType"] == "uniqueness"
    assert again.get_json()["detail"].startswith("scim_conflict")

    # Nothing of the first person changed, and its logins go on; the look-alike's own name,
    # in any letter case, finds the first person's user only by that person's spelling.
    with bridge.db.transaction() as session:
        assert [(u.id, u.user_name_key, u.resource_json, u.active)
                for u in session.query(ScimUser)] == before
        assert session.query(DeprovisionedSubject).count() == 0
    assert _active(client, victim["access_token"])
    assert _found(scim, 'userName eq "KELVIN@EXAMPLE.COM"') == ["kelvin@example.com"]
    assert _found(scim, 'userName eq "KELVIN@EXAMPLE.COM" or userName eq "x"') == [
        "kelvin@example.com"]


INVISIBLE = ["al\u00adice@example.com",  # SOFT HYPHEN
             "al\u200bice@example.com",  # ZERO WIDTH SPACE
             "alice\u2060@example.com",  # WORD JOINER
             "al\u200dice@example.com",  # ZERO WIDTH JOINER
             "alic\ufe0fe@example.com"]  # VARIATION SELECTOR-16


@pytest.mark.parametrize("spelling", INVISIBLE, ids=ascii)
@pytest.mark.parametrize("plain_first", [True, False])
def test_names_differing_by_invisible_characters_are_one_user_name(
        spelling: str, plain_first: bool, scim: Scim, bridge: Services) -> None:
    first, second = ("alice@example.com", spelling) if plain_first else (spelling,
                                                                          "alice@example.com")
    created = scim("POST", "/Users", entra_user(first, "a1"))
    assert created.status_code == 201
    again = scim("POST", "/Users", entra_user(second, "a2"))
    assert again.status_code == 409 and again.get_json()["scimType"] == "uniqueness"
    with bridge.db.transaction() as session:
        assert session.query(ScimUser).count() == 1
    # Lookups: the user by its own name only.
    assert _found(scim, f'userName eq "{first}"') == [first]
    assert _found(scim, f'userName eq "{second}"') == []
    # A rename of another user to the other spelling is a conflict too.
    other = scim("POST", "/Users", entra_user("bob@example.com", "b")).get_json()["id"]
    assert scim("PUT", f"/Users/{other}", entra_user(second, "b")).status_code == 409
