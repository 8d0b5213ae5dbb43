"""Malformed input from a SCIM client is a SCIM error (400, RFC 7644 §3.12), never a 500: a body
nested deeper than the JSON decoder recurses or deeper than any SCIM request needs, and an
unpaired surrogate (which JSON's \\u escapes can carry and neither database nor UTF-8 can hold)
in a userName, an externalId, an object key, a PATCH value or a filter's value. Nothing is
stored. And an error of the bridge's own is still a SCIM error document, never an HTML page."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.provisioning.scim_users import ScimUsers
from bridge.services import Services
from bridge.store.models import ScimUser
from tests.provisioning.conftest import Scim
from tests.provisioning.scim_shapes import okta_user

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEEP = 100_000


def _raw(client: FlaskClient, scim: Scim, method: str, path: str, data: str) -> TestResponse:
    return client.open(f"/scim/v2/dev{path}", method=method, data=data,
                       headers={"Authorization": f"Bearer {scim.token}",
                                "Content-Type": "application/scim+json"})


def _refused(answer: TestResponse, scim_type: str | None = None) -> None:
    assert answer.status_code == 400, (answer.status_code, answer.get_data(as_text=True)[:120])
    assert answer.mimetype == "application/scim+json"
    body = answer.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["detail"].startswith("scim_invalid")
    if scim_type:
        assert body["scimType"] == scim_type


_USER = '{"schemas": ["' + CORE + '"], '
BODIES = {
    "deeply nested array": "[" * DEEP + "]" * DEEP,
    "deeply nested value in a user": _USER + '"userName": "deep", "x": ' + "[" * DEEP + "]" * DEEP
                                     + "}",
    "nested deeper than a user needs": _USER + '"userName": "deep", "x": ' + "[" * 40 + "]" * 40
                                       + "}",
    "unpaired surrogate in userName": _USER + '"userName": "bob\\ud800"}',
    "unpaired surrogate in externalId": _USER + '"userName": "carol", "externalId": "\\udc00"}',
    "unpaired surrogate in a key": _USER + '"userName": "dave", "\\udc00": "x"}',
}


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_odd_body_is_a_scim_400(body: str, method: str, client: FlaskClient, scim: Scim,
                                   bridge: Services) -> None:
    existing = None
    if method == "PUT":
        existing = scim("POST", "/Users", okta_user("erin@example.com", "e")).get_json()["id"]
    path = "/Users" if method == "POST" else f"/Users/{existing}"
    _refused(_raw(client, scim, method, path, BODIES[body]))
    with bridge.db.transaction() as session:
        stored = [row.id for row in session.query(ScimUser)]
    assert stored == ([] if existing is None else [existing])
    if existing is not None:
        assert scim("GET", f"/Users/{existing}").get_json()["userName"] == "erin@example.com"


def test_an_unpaired_surrogate_in_a_patch_value_is_a_scim_400(client: FlaskClient,
                                                             scim: Scim) -> None:
    user_id = scim("POST", "/Users", okta_user("frank@example.com", "f")).get_json()["id"]
    body = ('{"schemas": ["' + PATCH + '"], "Operations": [{"op": "replace", "value": '
            '{"userName": "frank\\udbff@example.com"}}]}')
    _refused(_raw(client, scim, "PATCH", f"/Users/{user_id}", body))
    assert scim("GET", f"/Users/{user_id}").get_json()["userName"] == "frank@example.com"


@pytest.mark.parametrize("filter_text", ['userName eq "\\ud800"', 'externalId eq "\\udc00"',
                                         'userName eq "a" or displayName co "\\ud800"',
                                         'userName eq "\\u0000"'])
def test_a_filter_value_that_no_database_holds_is_a_scim_400(filter_text: str, client: FlaskClient,
                                                            scim: Scim) -> None:
    _refused(scim("GET", "/Users", query_string={"filter": filter_text}), "invalidFilter")
    # The filter's \\u escapes, as the text of a .search body's filter.
    posted = ('{"schemas": ["' + SEARCH + '"], "filter": '
              + '"' + filter_text.replace("\\", "\\\\").replace('"', '\\"') + '"}')
    _refused(_raw(client, scim, "POST", "/Users/.search", posted), "invalidFilter")


def test_an_error_of_the_bridge_is_a_scim_error_document(
        client: FlaskClient, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ScimUsers, "search", broken)
    answer = client.get("/scim/v2/dev/Users", headers={"Authorization": f"Bearer {scim.token}",
                                                         "Accept": "text/html"})
    assert answer.status_code == 500
    assert answer.mimetype == "application/scim+json"
    body = answer.get_json()
    assert body["status"] == "500" and body["detail"].startswith("server_error")
    assert "a bug" not in answer.get_data(as_text=True)


def test_an_unpaired_surrogate_in_a_patch_paths_filter_is_a_scim_400(scim: Scim) -> None:
    # Through Entra ID's "add through a filter that matches nothing", the filter's value would
    # become a stored e-mail address.
    created = scim("POST", "/Users", okta_user("gina@example.com", "g")).get_json()
    answer = scim("PATCH", f"/Users/{created['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": 'emails[value eq "\\ud800"].display', "value": "x"}]})
    _refused(answer, "invalidPath")
    assert scim("GET", f"/Users/{created['id']}").get_json() == created
