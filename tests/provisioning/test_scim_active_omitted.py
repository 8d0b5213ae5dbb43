"""A deactivated SCIM user stays refused until the IdP says ``active: true`` again
(docs/deprovisioning.md: "other PUT / PATCH: Stored; a profile change ends nothing and lifts no
refusal"). A full replacement that simply leaves ``active`` out, or a PATCH that removes or
nulls it, is not a reactivation: the person must still be refused at the next login."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, login_refused
from tests.provisioning.scim_shapes import PATCH, okta_user


def _profile_without_active() -> dict[str, Any]:
    user = okta_user(ALICE_NAME_ID, "alice")
    del user["active"]
    user["displayName"] = "Alice A. Andersen"  # a profile change, and nothing about active
    return user


NOT_REACTIVATIONS = {
    "PUT of the profile without active": ("PUT", _profile_without_active()),
    "PUT with active null": ("PUT", {**okta_user(ALICE_NAME_ID, "alice"), "active": None}),
    "PATCH removing active": ("PATCH", {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": "active"}]}),
    "PATCH replacing active with null": ("PATCH", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": None}]}),
    "PATCH replacing with an object holding active null": ("PATCH", {"schemas": [PATCH],
        "Operations": [{"op": "replace", "value": {"active": None}}]}),
}


@pytest.mark.parametrize("request_shape", sorted(NOT_REACTIVATIONS))
def test_a_request_that_never_says_active_true_keeps_a_deactivated_person_refused(
        request_shape: str, scim: Scim, browser: Browser) -> None:
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice", active=False))
    assert created.status_code == 201, created.get_data(as_text=True)
    assert login_refused(browser)

    method, body = NOT_REACTIVATIONS[request_shape]
    answer = scim(method, f"/Users/{created.get_json()['id']}", body)
    assert answer.status_code == 200, answer.get_data(as_text=True)

    # Still refused: nothing said active: true.
    assert login_refused(browser), f"{request_shape} reactivated a deactivated person"
