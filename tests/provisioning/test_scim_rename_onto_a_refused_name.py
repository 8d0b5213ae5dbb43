"""docs/deprovisioning.md, a PUT or PATCH setting active to true again: new logins are accepted
"unless another user of this IdP that names, or named, the same person is inactive". A user that
named the person and is inactive still named them after another user is renamed onto the name."""

from __future__ import annotations

from tests.helpers import Browser
from tests.provisioning.conftest import (  # noqa: F401
    ALICE_NAME_ID,
    Scim,
    idp_settings,
    login_refused,
    scim,
    scim_user_key,
    settings,
)
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, PATCH, okta_user


def test_a_user_renamed_onto_a_refused_name_and_reactivated_lifts_no_refusal(
        scim: Scim, browser: Browser) -> None:  # noqa: F811
    first = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    assert scim("PATCH", f"/Users/{first}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{first}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": "old-" + ALICE_NAME_ID}]}).status_code == 200
    assert login_refused(browser)  # the first user, inactive, named alice

    second = scim("POST", "/Users", okta_user("carol", "carol")).get_json()["id"]
    assert scim("PATCH", f"/Users/{second}", OKTA_DEACTIVATE).status_code == 200
    renamed = scim("PATCH", f"/Users/{second}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": ALICE_NAME_ID},
        {"op": "replace", "value": {"active": True}}]})
    assert renamed.status_code == 200, renamed.get_data(as_text=True)
    assert scim("GET", f"/Users/{first}").get_json()["active"] is False
    # The first user, which named alice, is still inactive.
    assert login_refused(browser)
