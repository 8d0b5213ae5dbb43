"""docs/deprovisioning.md: a reactivation accepts new logins again, "ended logins stay ended".
An access token of no login (SAML bearer grant) that a deactivation made inactive must stay
inactive once the person is reactivated; one issued after the reactivation is active, and a
second deactivation and reactivation end it in turn."""

from __future__ import annotations

from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.services import Services
from tests.conftest import CONFIDENTIAL_SECRET
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, scim  # noqa: F401
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user
from tests.provisioning.test_bearer_tokens_after_deprovisioning import (  # noqa: F401
    _bearer_token,
    settings,
)

REACTIVATE = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "replace", "value": {"active": True}}]}


def test_a_bearer_token_ended_by_a_deactivation_stays_ended_after_reactivation(
        client: FlaskClient, scim: Scim, dev_idp: DevIdp, settings: Settings) -> None:  # noqa: F811
    token = _bearer_token(client, dev_idp, settings)
    created = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice"))
    user = created.get_json()["id"]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert client.post("/introspect", data={"token": token},
                       auth=("backend", CONFIDENTIAL_SECRET)).get_json()["active"] is False

    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200

    introspected = client.post("/introspect", data={"token": token},
                               auth=("backend", CONFIDENTIAL_SECRET)).get_json()
    exchanged = client.post("/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "downstream-api"}, auth=("backend", CONFIDENTIAL_SECRET))
    # The token issued before the deactivation was ended by it: it stays inactive and buys
    # no new token.
    assert (introspected["active"], exchanged.status_code) == (False, 400), \
        (introspected, exchanged.status_code)


def _active(client: FlaskClient, token: str) -> bool:
    return bool(client.post("/introspect", data={"token": token},
                            auth=("backend", CONFIDENTIAL_SECRET)).get_json()["active"])


def test_a_bearer_token_issued_after_the_reactivation_is_active_until_the_next_refusal(
        bridge: Services, client: FlaskClient, scim: Scim, dev_idp: DevIdp,  # noqa: F811
        settings: Settings) -> None:  # noqa: F811
    user = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    before = _bearer_token(client, dev_idp, settings)
    bridge.clock.advance(2)  # type: ignore[attr-defined]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    bridge.clock.advance(2)  # type: ignore[attr-defined]
    after = _bearer_token(client, dev_idp, settings)
    assert (_active(client, before), _active(client, after)) == (False, True)

    bridge.clock.advance(2)  # type: ignore[attr-defined]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    assert scim("PATCH", f"/Users/{user}", REACTIVATE).status_code == 200
    assert (_active(client, before), _active(client, after)) == (False, False)
