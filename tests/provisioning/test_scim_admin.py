"""The SCIM token and the deprovisioning facts, through the admin API and the admin pages: the
token is shown once and stored as a hash, issuing a new one rotates, every issue and revocation is
audited with the admin who did it, and the page states the base URL and the matching rule."""

from __future__ import annotations

import json
import re

from flask.testing import FlaskClient

from bridge.admin.access import AdminAccess
from bridge.oauth.deprovisioned import is_deprovisioned
from bridge.saml.subject import derive_subject
from bridge.services import Services
from bridge.store.models import AuditEvent, DeprovisionedSubject, ProvisioningToken, ScimUser
from tests.leaks import remember
from tests.provisioning.conftest import Scim


def _admin_token(bridge: Services) -> str:
    return AdminAccess(bridge.db, bridge.clock, bridge.idps).create_token("tests", expires_in=3600,
                                                              actor="test")[1]


def test_issue_rotate_and_revoke_through_the_api(client: FlaskClient, bridge: Services) -> None:
    admin = {"Authorization": f"Bearer {_admin_token(bridge)}"}
    issued = client.post("/admin/api/idps/dev/scim-token", headers=admin)
    assert issued.status_code == 201
    first = issued.get_json()
    remember(first["token"])
    assert first["token"].startswith("scim_")
    assert first["scim_base_url"] == "https://bridge.example.com/scim/v2/dev"
    assert Scim(client, first["token"])("GET", "/Users").status_code == 200
    with bridge.db.transaction() as session:
        stored = [row.token_hash for row in session.query(ProvisioningToken)]
    assert first["token"] not in json.dumps(stored)

    status = client.get("/admin/api/idps/dev/deprovisioning", headers=admin).get_json()
    assert status["scim_token"]["id"] == first["id"] and first["token"] not in json.dumps(status)
    assert status["scim_user_key"] == "userName" and "NameID" in status["matching_rule"]

    second = client.post("/admin/api/idps/dev/scim-token", headers=admin).get_json()
    remember(second["token"])
    assert Scim(client, first["token"])("GET", "/Users").status_code == 401
    assert Scim(client, second["token"])("GET", "/Users").status_code == 200
    assert client.delete("/admin/api/idps/dev/scim-token", headers=admin).status_code == 204
    assert Scim(client, second["token"])("GET", "/Users").status_code == 401
    assert client.get("/admin/api/idps/dev/deprovisioning",
                      headers=admin).get_json()["scim_token"] is None
    with bridge.db.transaction() as session:
        events = [(e.event, json.loads(e.detail_json)["actor"]) for e in session.query(AuditEvent)
                  .filter(AuditEvent.event.like("scim_token_%")).order_by(AuditEvent.id)]
    assert [e for e, _ in events] == ["scim_token_issued", "scim_token_issued",
                                      "scim_token_revoked"]
    assert all(actor == "token:tests" for _, actor in events)


def test_only_admins_issue_tokens(client: FlaskClient, bridge: Services) -> None:
    assert client.post("/admin/api/idps/dev/scim-token").status_code == 401
    assert client.post("/admin/api/idps/dev/scim-token",
                       headers={"Authorization": "Bearer scim_" + "A" * 43}).status_code == 401
    admin = {"Authorization": f"Bearer {_admin_token(bridge)}"}
    assert client.post("/admin/api/idps/nosuch/scim-token", headers=admin).status_code == 404
    with bridge.db.transaction() as session:
        assert session.query(ProvisioningToken).count() == 0


def test_the_idp_page_shows_the_base_url_and_rule_and_issues_a_token(
        client: FlaskClient, bridge: Services) -> None:
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    session_id = access.claim_ticket(access.issue_ticket(subject="s", name="Alice",
                                                         idp_slug="dev"))
    assert session_id is not None
    client.set_cookie("__Host-bridge-admin", session_id)
    page = client.get("/admin/idps/dev").get_data(as_text=True)
    assert "https://bridge.example.com/scim/v2/dev" in page
    assert "userName" in page and "NameID" in page and "none: the IdP" in page
    csrf = access.authenticate_session(session_id).csrf_token  # type: ignore[union-attr]
    assert client.post("/admin/idps/dev/scim-token").status_code == 403  # no CSRF token
    shown = client.post("/admin/idps/dev/scim-token", data={"csrf_token": csrf})
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="new-scim-token">(scim_[A-Za-z0-9_-]+)<',
                      shown.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    remember(token)
    assert Scim(client, token)("GET", "/Users").status_code == 200
    assert token not in client.get("/admin/idps/dev").get_data(as_text=True)  # shown once
    revoked = client.post("/admin/idps/dev/scim-token/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert Scim(client, token)("GET", "/Users").status_code == 401


def test_an_idp_made_again_under_a_deleted_ones_slug_inherits_no_provisioning(
        client: FlaskClient, bridge: Services) -> None:
    from tests.test_idp_metadata import certificate, metadata

    admin = {"Authorization": f"Bearer {_admin_token(bridge)}"}
    # Its endpoints on an origin of its own (the file IdP dev holds idp.example.org's).
    document = metadata(certificate(), entity_id="https://acme.example.com").replace(
        "https://idp.example.org/sso", "https://acme.example.com/sso")

    def create() -> None:
        created = client.post("/admin/api/idps", headers=admin,
                              json={"slug": "acme", "metadata_xml": document})
        assert created.status_code == 201, created.get_data(as_text=True)

    create()
    token = client.post("/admin/api/idps/acme/scim-token", headers=admin).get_json()["token"]
    remember(token)
    acme = Scim(client, token, slug="acme")
    user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x",
            "active": False}
    assert acme("POST", "/Users", user).status_code == 201
    assert client.delete("/admin/api/idps/acme", headers=admin).status_code == 204
    assert acme("GET", "/Users").status_code == 401
    create()
    assert acme("GET", "/Users").status_code == 401
    refused = derive_subject("https://acme.example.com", "x")
    with bridge.db.transaction() as session:
        assert session.query(ScimUser).count() == 0
        # The refusal stays: it names the person of this IdP (the same one made again) by a
        # sub derived from its entity ID, and keeps refusing them.
        assert [(r.idp_slug, r.subject) for r in session.query(DeprovisionedSubject)] == \
            [("acme", refused)]

    # Another IdP under the slug: the same name at it is another person, and nobody refused.
    assert client.delete("/admin/api/idps/acme", headers=admin).status_code == 204
    document = document.replace("https://acme.example.com\"", "https://acme-two.example.com\"")
    create()
    assert derive_subject("https://acme-two.example.com", "x") != refused
    with bridge.db.transaction() as session:
        assert not is_deprovisioned(session, idp_slug="acme", subject=derive_subject(
            "https://acme-two.example.com", "x"))
        assert session.query(ScimUser).count() == 0
