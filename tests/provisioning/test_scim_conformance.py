"""scim2-tester, an independent SCIM checker, against an IdP's endpoint served over real HTTP
(werkzeug's server in a thread): discovery documents, and create, read, query, replace, patch
and delete of Users, each judged against RFC 7643/7644. No check may end in an error."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx2
import pytest
from flask import Flask
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server
from werkzeug.serving import make_server

from tests.provisioning.conftest import issue_token


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def test_scim2_tester_finds_no_error(app: Flask, served: str) -> None:
    token = issue_token(app)
    with httpx2.Client(base_url=f"{served}/scim/v2/dev",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        results = check_server(SyncSCIMClient(http), raise_exceptions=False)
    ran = [r for r in results if r.status != Status.SKIPPED]
    failed = [(r.title, r.status.name, r.reason) for r in ran
              if r.status in (Status.ERROR, Status.CRITICAL)]
    assert not failed, "\n".join(map(str, failed))
    titles = {r.title for r in ran}
    # The checks that matter to a provisioning client all ran.
    for needed in ("service_provider_config_endpoint", "object_creation", "object_query",
                   "object_replacement", "object_deletion"):
        assert any(needed in (title or "") for title in titles), (needed, sorted(titles))
