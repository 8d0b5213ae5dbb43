"""docs/deprovisioning.md: a reactivation accepts new logins again, "ended logins stay ended".
An access token of no login (SAML bearer grant) that a deactivation made inactive must stay
inactive once the person is reactivated; one issued after the reactivation is active, and a
second deactivation and reactivation end it in turn."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.grants import saml_bearer
from bridge.services import Services
from tests.bearer_tools import active, bearer_token, introspected_and_exchanged
from tests.conftest import CONFIDENTIAL_SECRET
from tests.helpers import Browser
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, scim  # noqa: F401
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user
from tests.provisioning.test_bearer_tokens_after_deprovisioning import settings  # noqa: F401

REACTIVATE = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "replace", "value": {"active": True}}]}


def test_a_bearer_token_ended_by_a_deactivation_stays_ended_after_reactivation(
        client: FlaskClient, scim: Scim, dev_idp: DevIdp, settings: Settings) -> None:  # noqa: F811
    token = bearer_token(client, dev_idp, settings)
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    user = created.get_json()["id"]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert not active(client, token)

    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200

    # The token issued before the deactivation was ended by it: it stays inactive and buys
    # no new token.
    assert introspected_and_exchanged(client, token) == (False, 400)


def test_a_bearer_token_issued_after_the_reactivation_is_active_until_the_next_refusal(
        bridge: Services, client: FlaskClient, scim: Scim, dev_idp: DevIdp,  # noqa: F811
        settings: Settings) -> None:  # noqa: F811
    user = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    before = bearer_token(client, dev_idp, settings)
    bridge.clock.advance(2)  # type: ignore[attr-defined]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    bridge.clock.advance(2)  # type: ignore[attr-defined]
    after = bearer_token(client, dev_idp, settings)
    assert (active(client, before), active(client, after)) == (False, True)

    bridge.clock.advance(2)  # type: ignore[attr-defined]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    assert (active(client, before), active(client, after)) == (False, False)


def test_a_bearer_token_issued_after_a_reactivation_in_the_same_second_stands(
        bridge: Services, client: FlaskClient, scim: Scim, dev_idp: DevIdp,  # noqa: F811
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A deactivation and reactivation, then a new token, all within one second: the token was
    issued after the refusal, and stands; one issued before it, in that second too, does not."""
    second = float(int(bridge.clock.now()) + 10)
    instant = [second + 0.1]
    monkeypatch.setattr(bridge.clock, "now", lambda: instant[0])
    user = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    before = bearer_token(client, dev_idp, settings)
    instant[0] = second + 0.3
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    instant[0] = second + 0.6
    after = bearer_token(client, dev_idp, settings)
    assert (active(client, before), active(client, after)) == (False, True)


def test_userinfo_refuses_a_bearer_token_a_lifted_refusal_ended_though_a_new_login_lives(
        bridge: Services, client: FlaskClient, scim: Scim, dev_idp: DevIdp,  # noqa: F811
        settings: Settings) -> None:  # noqa: F811
    token = bearer_token(client, dev_idp, settings)
    user = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    bridge.clock.advance(2)  # type: ignore[attr-defined]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    # alice signs in again with the same client: a live login of hers, which the old token is
    # not part of.
    redirect = "https://backend.example.com/callback"
    code, login = Browser(client, dev_idp, bridge).login(client_id="backend", redirect_uri=redirect)
    exchanged = client.post("/token", auth=("backend", CONFIDENTIAL_SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "code_verifier": login.verifier})
    assert exchanged.status_code == 200, exchanged.get_data(as_text=True)
    assert introspected_and_exchanged(client, token) == (False, 400)
    answered = client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert answered.status_code == 401
    assert client.get("/userinfo", headers={
        "Authorization": f"Bearer {exchanged.get_json()['access_token']}"}).status_code == 200


# The deactivation's own time: after the token's issue time, or before it (the deactivation
# began first, and committed only after the grant had checked the person: its refusal was not
# there to see yet).
@pytest.mark.parametrize("deactivated_at", [0.3, 0.05])
def test_a_bearer_token_whose_person_was_deactivated_while_it_was_granted_stays_ended(
        bridge: Services, client: FlaskClient, scim: Scim, dev_idp: DevIdp,  # noqa: F811
        settings: Settings, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        deactivated_at: float) -> None:
    """The deactivation commits after the grant checked the person and before it signed: the
    token rests on the IdP's word from before the deactivation, and its lifting brings nothing
    back."""
    user = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    second = float(int(bridge.clock.now()) + 10)
    instant = [second + 0.1]
    monkeypatch.setattr(bridge.clock, "now", lambda: instant[0])
    use_unsolicited = saml_bearer.use_unsolicited

    def deactivated_meanwhile(*args: Any, **kwargs: Any) -> None:
        use_unsolicited(*args, **kwargs)
        instant[0] = second + deactivated_at
        assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
        instant[0] = second + 0.5  # the token is signed now

    monkeypatch.setattr(saml_bearer, "use_unsolicited", deactivated_meanwhile)
    token = bearer_token(client, dev_idp, settings)
    monkeypatch.setattr(saml_bearer, "use_unsolicited", use_unsolicited)
    assert not active(client, token)
    instant[0] = second + 5
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    assert not active(client, token)
