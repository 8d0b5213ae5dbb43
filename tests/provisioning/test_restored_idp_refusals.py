"""docs/deprovisioning.md: a deprovisioned person "must not come back" until the IdP reactivates
them (an explicit active true by SCIM, or account-enabled). Deleting an IdP and restoring it
(the same IdP, the same entity ID, the same people) is no reactivation by the IdP."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from tests.bearer_tools import bearer_grant
from tests.provisioning.conftest import ALICE_NAME_ID, Scim, issue_token
from tests.provisioning.scim_shapes import OKTA_DEACTIVATE, okta_user
from tests.test_deleted_idp_bearer_tokens import api, settings  # noqa: F401
from tests.test_idp_stages import SLUG


def test_deleting_and_restoring_an_idp_lifts_no_refusal(
        api, app: Flask, client: FlaskClient, session_other_idp: DevIdp,  # type: ignore[no-untyped-def]  # noqa: F811
        settings: Settings) -> None:  # noqa: F811
    created = api("POST", "/admin/api/idp-drafts",
                  json={"slug": SLUG, "settings": {"display_name": "Contoso",
                                                   "scim_user_key": "userName"}})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert api("POST", f"/admin/api/idps/{SLUG}/metadata", json={
        "metadata_xml": session_other_idp.metadata_xml().decode()}).status_code == 200
    assert api("POST", f"/admin/api/idps/{SLUG}/go-live",
               json={"without_test": True}).status_code == 200
    assert bearer_grant(client, session_other_idp, settings).status_code == 200

    scim = Scim(client, issue_token(app, SLUG), slug=SLUG)
    user = scim("POST", "/Users", okta_user(ALICE_NAME_ID, "alice")).get_json()["id"]
    assert scim("PATCH", f"/Users/{user}", OKTA_DEACTIVATE).status_code == 200
    refused = bearer_grant(client, session_other_idp, settings)
    assert refused.status_code != 200, refused.get_data(as_text=True)

    # The IdP deleted (by mistake, say) and restored: the same IdP, the same people.
    assert api("DELETE", f"/admin/api/idps/{SLUG}",
               json={"confirm_slug": SLUG}).status_code == 204
    assert api("POST", f"/admin/api/deleted-idps/{SLUG}/restore").status_code == 200
    assert api("POST", f"/admin/api/idps/{SLUG}/go-live",
               json={"without_test": True}).status_code == 200

    again = bearer_grant(client, session_other_idp, settings)
    # Nobody said "active" for alice: she stays refused.
    assert again.status_code != 200, again.get_data(as_text=True)
