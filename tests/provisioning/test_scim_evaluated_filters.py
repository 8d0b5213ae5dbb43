"""Filters that scim2-models evaluates over the IdP's users (any filter other than a bare
``userName``/``externalId``/``id eq``) see every attribute a client can filter on, as the
indexed lookups do: RFC 7644 §3.4.2.2 lets a client filter on ``id`` and ``meta.*``."""

from __future__ import annotations

from tests.provisioning.conftest import Scim
from tests.provisioning.scim_shapes import okta_user


def _found(scim: Scim, filter_text: str) -> int:
    answer = scim("GET", "/Users", query_string={"filter": filter_text})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return int(answer.get_json()["totalResults"])


def test_evaluated_filters_on_id_and_meta_find_the_user(scim: Scim) -> None:
    created = scim("POST", "/Users", okta_user("alice@example.com", "a"))
    user_id = created.get_json()["id"]
    assert _found(scim, f'id eq "{user_id}"') == 1  # the indexed lookup
    # The same question, asked through the evaluated path: expected 1 each, actual 0.
    assert _found(scim, f'id eq "{user_id}" or id eq "{user_id}"') == 1
    assert _found(scim, f'id eq "{user_id}" and userName eq "alice@example.com"') == 1
    assert _found(scim, 'meta.lastModified gt "2000-01-01T00:00:00Z"') == 1
    assert _found(scim, 'meta.resourceType eq "User"') == 1
