"""A filter that is not an indexed lookup is evaluated by scim2-models over every user of the
IdP, in the request, at a cost of users × terms. A filter of thousands of terms fits in one
``POST /Users/.search`` body or one query string: it is refused (400 ``invalidFilter``) before
it is evaluated, by its length and by its number of terms, on both ways of searching."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from bridge.provisioning.scim_search import MAX_FILTER_LENGTH, MAX_FILTER_TERMS
from bridge.services import Services
from bridge.store.models import ScimUser
from tests.provisioning.conftest import Scim

USERS = 200
TERMS = 5000
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def _many_users(bridge: Services) -> None:
    with bridge.db.transaction() as session:
        for i in range(USERS):
            name = f"user{i}@example.com"
            session.add(ScimUser(
                id=uuid.uuid4().hex, idp_slug="dev", version=1, created_at=i, updated_at=i,
                user_name_key=name, external_id=None, active=True, subject=None,
                resource_json=json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                          "userName": name})))


def _terms(count: int, name: str = "nobody{}") -> str:
    return " or ".join(f'userName eq "{name.format(j)}"' for j in range(count))


def _search(scim: Scim, how: str, filter_text: str) -> tuple[int, dict[str, object]]:
    if how == "GET":
        answer = scim("GET", "/Users", query_string={"filter": filter_text, "count": 1})
    else:
        answer = scim("POST", "/Users/.search", {"schemas": [SEARCH], "filter": filter_text,
                                                 "count": 1})
    return answer.status_code, answer.get_json()


@pytest.mark.parametrize("how", ["GET", "POST"])
def test_a_filter_of_thousands_of_terms_is_refused_before_it_is_evaluated(
        how: str, scim: Scim, bridge: Services) -> None:
    _many_users(bridge)
    started = time.perf_counter()
    status, body = _search(scim, how, _terms(TERMS))
    elapsed = time.perf_counter() - started
    assert status == 400
    assert body["scimType"] == "invalidFilter"
    assert "scim_invalid" in str(body["detail"])
    assert elapsed < 1.0, round(elapsed, 2)


@pytest.mark.parametrize("how", ["GET", "POST"])
def test_a_filter_of_too_many_terms_within_the_length_is_refused(how: str, scim: Scim) -> None:
    short = " or ".join(f'id eq "{j}"' for j in range(MAX_FILTER_TERMS))
    assert len(short) < MAX_FILTER_LENGTH
    status, body = _search(scim, how, short)
    assert status == 400 and body["scimType"] == "invalidFilter"
    assert "terms" in str(body["detail"])


@pytest.mark.parametrize("how", ["GET", "POST"])
def test_a_filter_longer_than_the_limit_is_refused(how: str, scim: Scim) -> None:
    status, body = _search(scim, how, 'userName eq "' + "a" * MAX_FILTER_LENGTH + '"')
    assert status == 400 and body["scimType"] == "invalidFilter"
    assert str(MAX_FILTER_LENGTH) in str(body["detail"])


@pytest.mark.parametrize("how", ["GET", "POST"])
def test_a_filter_within_the_limits_is_answered(how: str, scim: Scim, bridge: Services) -> None:
    _many_users(bridge)
    # 99 comparisons and the one "or" that joins them all.
    status, body = _search(scim, how, _terms(MAX_FILTER_TERMS - 1, "user{}@example.com"))
    assert status == 200, body
    assert body["totalResults"] == MAX_FILTER_TERMS - 1


PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.mark.parametrize("terms", [TERMS, MAX_FILTER_TERMS])
def test_a_patch_path_of_too_many_terms_is_refused_before_it_is_applied(
        terms: int, scim: Scim) -> None:
    # A path's filter is evaluated over the user's entries: terms × entries, in the transaction
    # that holds the user.
    created = scim("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                      "userName": "many@example.com",
                                      "emails": [{"value": f"e{i}@example.com"}
                                                 for i in range(200)]}).get_json()
    path = "emails[" + " or ".join(f'value eq "n{j}"' for j in range(terms)) + "]"
    started = time.perf_counter()
    answer = scim("PATCH", f"/Users/{created['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "remove", "path": path}]})
    assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
    assert answer.get_json()["scimType"] == "invalidPath"
    assert time.perf_counter() - started < 1.0
    stored = scim("GET", f"/Users/{created['id']}").get_json()
    assert len(stored["emails"]) == 200 and stored["meta"]["version"] == created["meta"]["version"]


def test_a_patch_path_within_the_limits_is_applied(scim: Scim) -> None:
    created = scim("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                      "userName": "few@example.com",
                                      "emails": [{"value": f"e{i}@example.com"}
                                                 for i in range(3)]}).get_json()
    path = "emails[" + " or ".join(f'value eq "e{j}@example.com"' for j in range(2)) + "]"
    answer = scim("PATCH", f"/Users/{created['id']}", {
        "schemas": [PATCH], "Operations": [{"op": "remove", "path": path}]})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert [email["value"] for email in answer.get_json()["emails"]] == ["e2@example.com"]
