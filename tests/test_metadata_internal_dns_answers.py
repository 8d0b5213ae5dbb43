"""Decision 28: the metadata fetcher must not become a way to ask the internal DNS questions
("cannot resolve" against any other failure answers them). An admin who types an internal name
that exists and one that does not, neither listed, should get the same answer."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from bridge.services import Services
from tests.test_metadata_internal_hosts import Dns, _token_headers


def _answer(client: FlaskClient, headers: dict[str, str], url: str) -> dict[str, object]:
    answered = client.post("/admin/api/idps/probe/metadata", headers=headers,
                           json={"metadata_url": url})
    assert answered.status_code == 422, answered.get_data(as_text=True)
    body = dict(answered.json or {})
    body.pop("error_id", None)
    return body


def test_an_internal_name_that_exists_reads_like_one_that_does_not(
        bridge: Services, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.idps.fetch.system_resolver", Dns(dc01_corp_test=["10.1.2.3"]))
    headers = _token_headers(bridge)
    assert client.post("/admin/api/idp-drafts", headers=headers,
                       json={"slug": "probe", "settings": {}}).status_code == 201

    exists = _answer(client, headers, "https://dc01.corp.test/")
    missing = _answer(client, headers, "https://dc02.corp.test/")
    # Neither names an address; they should not tell apart a name the internal DNS knows.
    assert "10.1.2.3" not in str(exists)
    assert str(exists).replace("dc01", "dcXX") == str(missing).replace("dc02", "dcXX"), \
        (exists, missing)
