"""Rate limits: 429 with Retry-After, per address and per client, shared through Redis by every
node."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
import redis

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from bridge.web import create_app
from tests.conftest import IN_CI, make_settings

REDIS_URL = os.environ.get("BRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()  # database 15: the tests' own
    except redis.RedisError as error:
        if IN_CI:
            pytest.fail(f"Redis must be reachable in CI: {error}")
        pytest.skip(f"Redis not reachable: {error}")
    return REDIS_URL


def _settings(database: Database, idp_dir: Path, tmp_path: Path, **limits: object) -> Settings:
    return make_settings(database, idp_dir, tmp_path, **limits)


def test_authorize_over_the_limit_is_429_with_retry_after(database: Database, idp_dir: Path,
                                                          tmp_path: Path, dev_idp: DevIdp) -> None:
    app = create_app(_settings(database, idp_dir, tmp_path, rate_limit_authorize="3/minute"))
    client = app.test_client()
    try:
        answers = [client.get("/authorize?client_id=demo", headers={"Accept": "application/json"})
                   for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [400, 400, 400]
        assert answers[3].status_code == 429
        assert int(answers[3].headers["Retry-After"]) > 0
        assert answers[3].get_json()["code"] == "rate_limited"
    finally:
        app.extensions["bridge"].db.dispose()


def test_token_limits_per_client(database: Database, idp_dir: Path, tmp_path: Path,
                                 dev_idp: DevIdp) -> None:
    app = create_app(_settings(database, idp_dir, tmp_path, rate_limit_token_per_client="2/minute"))
    client = app.test_client()
    try:
        form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "demo"}
        statuses = [client.post("/token", data=form).status_code for _ in range(3)]
        assert statuses == [400, 400, 429]
        assert client.post("/token", data=form).get_json()["error"] == "slow_down"
        other = {**form, "client_id": "backend", "client_secret": "wrong"}
        assert client.post("/token", data=other).status_code == 401  # another client's budget
    finally:
        app.extensions["bridge"].db.dispose()


def test_limits_are_shared_by_nodes_through_redis(database: Database, idp_dir: Path,
                                                  tmp_path: Path, dev_idp: DevIdp,
                                                  redis_url: str) -> None:
    settings = _settings(database, idp_dir, tmp_path, rate_limit_authorize="4/minute",
                         rate_limit_storage_url=redis_url)
    nodes = [create_app(settings), create_app(settings)]
    try:
        statuses = [nodes[i % 2].test_client().get("/authorize?client_id=demo").status_code
                    for i in range(5)]
        assert statuses == [400, 400, 400, 400, 429]
    finally:
        for app in nodes:
            app.extensions["bridge"].db.dispose()


def test_unreachable_storage_serves_requests_uncounted(database: Database, idp_dir: Path,
                                                       tmp_path: Path, dev_idp: DevIdp,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 9 of loopback: every count fails, and the bridge serves regardless.
    settings = _settings(database, idp_dir, tmp_path, rate_limit_authorize="1/minute",
                         rate_limit_storage_url="redis://127.0.0.1:9/0")
    app = create_app(settings)
    try:
        statuses = [app.test_client().get("/authorize?client_id=demo").status_code
                    for _ in range(3)]
        assert statuses == [400, 400, 400]
        assert "rate limit storage unavailable" in caplog.text
    finally:
        app.extensions["bridge"].db.dispose()


def test_a_redis_that_stops_answering_does_not_hold_requests(database: Database, idp_dir: Path,
                                                             tmp_path: Path, dev_idp: DevIdp
                                                             ) -> None:
    # A listening socket that never answers: connections succeed, every reply hangs.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    settings = _settings(database, idp_dir, tmp_path,
                         rate_limit_storage_url=f"redis://127.0.0.1:{port}/0")
    app = create_app(settings)
    statuses: list[int] = []
    worker = threading.Thread(target=lambda: statuses.append(
        app.test_client().get("/authorize?client_id=demo").status_code), daemon=True)
    try:
        worker.start()
        worker.join(30)  # without a socket timeout the request would wait for ever
        assert statuses == [400]
    finally:
        silent.close()
        app.extensions["bridge"].db.dispose()
