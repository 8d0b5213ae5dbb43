"""Rate limits: 429 with Retry-After, per address and per client, shared through Redis by every
node; per-client budgets only spent by authenticated clients."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.exceptions import TooManyRequests

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.store.db import Database
from bridge.store.maintenance import purge_expired
from bridge.store.models import AuditEvent, AuthnRequestRecord
from bridge.web import create_app
from tests.conftest import CONFIDENTIAL_SECRET, make_settings
from tests.databases import IN_CI
from tests.helpers import Browser

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


@pytest.mark.parametrize("setting", ["rate_limit_authorize", "rate_limit_token_per_client",
                                     "rate_limit_token_per_address"])
def test_every_rate_of_a_setting_is_enforced(setting: str, database: Database, idp_dir: Path,
                                             tmp_path: Path, dev_idp: DevIdp) -> None:
    # A setting may name several rates; the stricter one second must hold as well as the first.
    app = create_app(_settings(database, idp_dir, tmp_path, **{setting: "100/minute;2/hour"}))
    client = app.test_client()
    try:
        if setting == "rate_limit_authorize":
            answers = [client.get("/authorize?client_id=demo") for _ in range(3)]
        else:
            form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "demo"}
            answers = [client.post("/token", data=form) for _ in range(3)]
        assert [a.status_code for a in answers] == [400, 400, 429]
        # Refused by the hour's window, so not worth retrying within the minute.
        assert int(answers[2].headers["Retry-After"]) > 60
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


# --- client authentication: per address before it, per client only after it --------------------

def _app(database: Database, idp_dir: Path, tmp_path: Path, **limits: object) -> Flask:
    return create_app(_settings(database, idp_dir, tmp_path, **limits))


def _at(address: str) -> dict[str, str]:
    return {"REMOTE_ADDR": address}


def _admin_sign_in_start(client: FlaskClient, address: str) -> int:
    """The status of an admin sign-in start (limited per address) sent from ``address``."""
    return client.get("/admin/login/dev", environ_base=_at(address)).status_code


def test_strangers_naming_a_public_client_cannot_spend_its_budget(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    app = _app(database, idp_dir, tmp_path, rate_limit_token_per_client="3/minute")
    try:
        # A few addresses post junk to /token naming the public client "demo"...
        for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            statuses = [app.test_client().post("/token", environ_base=_at(address), data={
                "grant_type": "refresh_token", "refresh_token": "junk", "client_id": "demo",
            }).status_code for _ in range(5)]
            assert statuses == [400, 400, 400, 429, 429]  # ...and spend their own budget only
        # Every real user of the SPA still exchanges codes and refreshes.
        browser = Browser(app.test_client(), dev_idp, app.extensions["bridge"])
        tokens = browser.tokens()
        assert browser.refresh(tokens["refresh_token"]).status_code == 200
    finally:
        app.extensions["bridge"].db.dispose()


def test_failed_authentication_does_not_spend_a_confidential_clients_budget(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    app = _app(database, idp_dir, tmp_path, rate_limit_token_per_client="3/minute")
    form = {"grant_type": "refresh_token", "refresh_token": "junk"}
    try:
        for address in ("203.0.113.1", "203.0.113.2"):
            for _ in range(4):
                wrong = app.test_client().post("/token", data=form, environ_base=_at(address),
                                               auth=("backend", "a-guess"))
                assert wrong.status_code == 401
        # The real backend is not locked out; its own requests are what its budget counts.
        real = [app.test_client().post("/token", data=form, environ_base=_at("192.0.2.10"),
                                       auth=("backend", CONFIDENTIAL_SECRET)).status_code
                for _ in range(4)]
        assert real == [400, 400, 400, 429]
    finally:
        app.extensions["bridge"].db.dispose()


@pytest.mark.parametrize("path,form", [
    ("/introspect", {"token": "x"}),
    ("/revoke", {"token": "x"}),
    ("/logout", {"refresh_token": "x"}),
])
def test_client_secrets_cannot_be_guessed_at_speed(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp, path: str,
        form: dict[str, str]) -> None:
    app = _app(database, idp_dir, tmp_path, rate_limit_token_per_address="3/minute",
               rate_limit_introspect_per_address="3/minute")
    client = app.test_client()
    try:
        guesses = [client.post(path, data=form, environ_base=_at("203.0.113.7"),
                               auth=("backend", f"guess-{i}")) for i in range(5)]
        assert [g.status_code for g in guesses] == [401, 401, 401, 429, 429]
        assert guesses[3].get_json()["error"] == "slow_down"
        assert int(guesses[3].headers["Retry-After"]) > 0
        # Even the right secret gets no answer from that address now...
        assert client.post(path, data=form, environ_base=_at("203.0.113.7"),
                           auth=("backend", CONFIDENTIAL_SECRET)).status_code == 429
        # ...while the real backend, elsewhere, is served.
        assert client.post(path, data=form, environ_base=_at("192.0.2.10"),
                           auth=("backend", CONFIDENTIAL_SECRET)).status_code == 200
    finally:
        app.extensions["bridge"].db.dispose()


# --- unauthenticated endpoints that write rows --------------------------------------------------

def _count(app: Flask, model: type) -> int:
    with app.extensions["bridge"].db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_admin_sign_in_starts_are_limited_per_address(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    app = _app(database, idp_dir, tmp_path, rate_limit_admin_login="3/minute")
    try:
        statuses = [app.test_client().get("/admin/login/dev", environ_base=_at("203.0.113.8"),
                                          headers={"Accept": "application/json"}).status_code
                    for _ in range(6)]
        assert statuses == [302, 302, 302, 429, 429, 429]
        assert _count(app, AuthnRequestRecord) == 3  # what one address can make us store
        assert app.test_client().get("/admin/login/dev",
                                     environ_base=_at("192.0.2.20")).status_code == 302
        # And what was stored goes when it expires.
        ttl = app.extensions["bridge"].settings.authn_request_ttl_seconds
        purge_expired(app.extensions["bridge"].db, now=time.time() + ttl + 1)
        assert _count(app, AuthnRequestRecord) == 0
    finally:
        app.extensions["bridge"].db.dispose()


def test_the_addresses_of_one_ipv6_64_share_one_budget(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    # An end site holds a whole /64: a sender that takes a new address of it for every request
    # must not get a new budget with each.
    app = _app(database, idp_dir, tmp_path, rate_limit_admin_login="3/minute",
               rate_limit_token_per_client="3/minute")
    try:
        client = app.test_client()
        statuses = [client.get("/admin/login/dev", environ_base=_at(f"2001:db8:7:9::{i:x}"),
                               headers={"Accept": "application/json"}).status_code
                    for i in range(1, 31)]
        assert statuses == [302] * 3 + [429] * 27
        assert _count(app, AuthnRequestRecord) == 3
        # Written as an IPv4 address in IPv6 form, an address counts as that IPv4 address.
        for _ in range(3):
            assert _admin_sign_in_start(client, "198.51.100.7") == 302
        assert client.get("/admin/login/dev",
                          environ_base=_at("::ffff:198.51.100.7")).status_code == 429
        # Another /64 has a budget of its own.
        assert _admin_sign_in_start(client, "2001:db8:7:a::1") == 302
        # A public client's budget is per client and /64 likewise.
        form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "demo"}
        answers = [client.post("/token", data=form, environ_base=_at(f"2001:db8:5:5::{i}"))
                   for i in range(1, 5)]
        assert [a.status_code for a in answers] == [400, 400, 400, 429]
    finally:
        app.extensions["bridge"].db.dispose()


@pytest.mark.parametrize(("address", "counted"), [
    ("192.0.2.1", "192.0.2.1"),
    (" 192.0.2.1 ", "192.0.2.1"),
    ("198.51.100.7:1111", "198.51.100.7"),  # a proxy that writes the client's port
    ("2001:db8:7:9:a:b:c:d", "2001:db8:7:9::/64"),
    ("2001:DB8:7:9::5", "2001:db8:7:9::/64"),
    ("[2001:db8:7:9::5]", "2001:db8:7:9::/64"),
    ("[2001:db8:7:9::5]:443", "2001:db8:7:9::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    # IPv6 forms of an IPv4 address count as that address: one IPv4 sender is one budget, and
    # the IPv4 senders behind a translator are not one budget together.
    ("::ffff:198.51.100.9", "198.51.100.9"),
    ("64:ff9b::198.51.100.9", "198.51.100.9"),
    ("64:ff9b::203.0.113.77", "203.0.113.77"),
    ("2002:c633:6409:1234::1", "198.51.100.9"),  # 6to4: a /48 from one IPv4 address
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo: the client's address
    ("garbage", "unparsed"), ("", "unparsed"), ("198.51.100.777", "unparsed"),
])
def test_the_address_a_budget_is_counted_for(address: str, counted: str) -> None:
    from bridge.web.rate_limits import counted_address

    assert counted_address(address) == counted


def test_an_address_under_a_listed_nat64_prefix_counts_as_its_ipv4_address() -> None:
    from bridge.web.rate_limits import counted_address

    listed = ("2001:db8:64::/96",)
    # Unlisted, the IPv4 senders behind the operator's translator share its /64...
    assert counted_address("2001:db8:64::198.51.100.9") == "2001:db8:64::/64"
    # ...listed, each counts as itself; the well-known prefix still does.
    assert counted_address("2001:db8:64::198.51.100.9", listed) == "198.51.100.9"
    assert counted_address("[2001:db8:64::c633:640a]:443", listed) == "198.51.100.10"
    assert counted_address("64:ff9b::198.51.100.9", listed) == "198.51.100.9"
    # Outside the /96, the rest of its /64 is counted by its /64 as before.
    assert counted_address("2001:db8:64:0:1::5", listed) == "2001:db8:64::/64"


def test_senders_behind_a_listed_nat64_gateway_have_budgets_of_their_own(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    app = _app(database, idp_dir, tmp_path, rate_limit_admin_login="3/minute",
               nat64_prefixes=["2001:db8:64::/96"])
    try:
        client = app.test_client()
        behind = [_admin_sign_in_start(client, address)
                  for address in ["2001:db8:64::198.51.100.1"] * 4 + ["2001:db8:64::198.51.100.2"]]
        # One IPv4 sender spends its own budget, not its neighbour's.
        assert behind == [302, 302, 302, 429, 302]
        # The same sender reaching us over IPv4 is the same budget.
        assert _admin_sign_in_start(client, "198.51.100.1") == 429
    finally:
        app.extensions["bridge"].db.dispose()


def test_a_proxy_that_writes_ports_does_not_give_each_connection_a_budget(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    app = _app(database, idp_dir, tmp_path, rate_limit_admin_login="3/minute")
    try:
        client = app.test_client()
        statuses = [_admin_sign_in_start(client, address)
                    for address in ("198.51.100.7:1111", "198.51.100.7:2222", "198.51.100.7",
                                    "198.51.100.7:3333", "[2001:db8:7:9::5]:1",
                                    "[2001:db8:7:9::6]:2", "2001:db8:7:9::7",
                                    "[2001:db8:7:9::8]")]
        assert statuses == [302, 302, 302, 429, 302, 302, 302, 429]
    finally:
        app.extensions["bridge"].db.dispose()


def test_single_logout_is_limited_per_address(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    # Every refused LogoutRequest is an audit event: junk from one address must stop adding them.
    app = _app(database, idp_dir, tmp_path, rate_limit_acs="3/minute")
    try:
        statuses = [app.test_client().get("/saml/dev/slo?SAMLRequest=junk",
                                          environ_base=_at("203.0.113.9"),
                                          headers={"Accept": "application/json"}).status_code
                    for _ in range(6)]
        assert statuses == [400, 400, 400, 429, 429, 429]
        assert _count(app, AuditEvent) == 3
    finally:
        app.extensions["bridge"].db.dispose()


def test_the_page_that_posts_our_logout_request_is_limited_per_address(
        database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> None:
    # It builds and signs a message for every valid link: counted with Single Logout.
    app = _app(database, idp_dir, tmp_path, rate_limit_acs="3/minute")
    try:
        statuses = [app.test_client().get(path, environ_base=_at("203.0.113.10"),
                                          headers={"Accept": "application/json"}).status_code
                    for path in ["/saml/dev/logout?ticket=junk"] * 2 + ["/saml/dev/slo"] * 2]
        assert statuses == [400, 400, 400, 429]
    finally:
        app.extensions["bridge"].db.dispose()


@pytest.mark.parametrize("storage", ["memory://", "redis"])
def test_a_check_counts_in_the_librarys_own_window(storage: str, request: pytest.FixtureRequest
                                                   ) -> None:
    # RateLimits writes the key of FixedWindowRateLimiter itself: a node on another version (or
    # the library's own reading of a window) must count in the same one.
    from types import SimpleNamespace
    from typing import cast

    from limits import parse
    from limits.strategies import FixedWindowRateLimiter

    from bridge.web.rate_limits import KEY_PREFIX, RateLimits

    url = request.getfixturevalue("redis_url") if storage == "redis" else storage
    limits = RateLimits(cast(Settings, SimpleNamespace(rate_limit_storage_url=url,
                                                       rate_limit_token_per_client="3/minute")))
    limit = parse("3/2 minutes")
    library = FixedWindowRateLimiter(limits._storage)
    limits.check(limit, "token-client", "spa 192.0.2.1")
    assert library.get_window_stats(limit, KEY_PREFIX, "token-client", "spa 192.0.2.1"
                                    ).remaining == 2
    assert library.hit(limit, KEY_PREFIX, "token-client", "spa 192.0.2.1")
    limits.check(limit, "token-client", "spa 192.0.2.1")
    with pytest.raises(TooManyRequests):
        limits.check(limit, "token-client", "spa 192.0.2.1")
    # Other keys, scopes and limits are windows of their own.
    limits.check(limit, "token-client", "spa 192.0.2.2")
    limits.check(limit, "token-address", "spa 192.0.2.1")
    limits.check(parse("3/minute"), "token-client", "spa 192.0.2.1")


def test_a_rate_written_twice_counts_once() -> None:
    from bridge.web.rate_limits import rates

    assert [str(r) for r in rates("3/minute;3 per minute;3/2 minutes;6/hour")] == [
        "3 per 1 minute", "3 per 2 minute", "6 per 1 hour"]


def test_a_setting_that_repeats_a_rate_serves_that_rate(database: Database, idp_dir: Path,
                                                        tmp_path: Path, dev_idp: DevIdp) -> None:
    app = create_app(_settings(database, idp_dir, tmp_path,
                               rate_limit_authorize="3/minute;3 per minute"))
    client = app.test_client()
    try:
        statuses = [client.get("/authorize?client_id=demo").status_code for _ in range(4)]
        assert statuses == [400, 400, 400, 429]
    finally:
        app.extensions["bridge"].db.dispose()
