"""Refresh under contention: many parallel refreshes of one token from several processes
(PostgreSQL) or threads (SQLite), and revocation racing refreshes."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.config import Settings
from bridge.dev.saml_idp import DevIdp
from bridge.oauth.revocation import Revocation
from bridge.services import Services
from bridge.store.db import Database
from bridge.store.models import RefreshFamily, RefreshToken
from tests import refresh_workers
from tests.conftest import DEMO_CLIENT, make_settings
from tests.helpers import Browser

pytestmark = pytest.mark.slow  # every test here starts processes

NO_REUSE = {"client_id": "strict", "redirect_uris": ["https://strict.example.com/cb"],
            "audience": "strict-api", "refresh_reuse_interval_seconds": 0}
WORKERS = 8


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path, clients=[DEMO_CLIENT, NO_REUSE])


def _run_parallel(bridge: Services, function, arguments: list[tuple]) -> list:  # type: ignore[no-untyped-def,type-arg]
    """Processes on PostgreSQL (several nodes' worth), threads on SQLite (one process)."""
    if bridge.db.dialect == "postgresql":
        with multiprocessing.get_context("spawn").Pool(len(arguments)) as pool:
            return pool.starmap(function, arguments)
    with ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(lambda args: function(*args), arguments))


def _login(browser: Browser, client: dict) -> str:
    redirect = client["redirect_uris"][0]
    code, login = browser.login(client_id=client["client_id"], redirect_uri=redirect)
    response = browser.exchange(code, login.verifier, client_id=client["client_id"],
                                redirect_uri=redirect)
    return str(response.get_json()["refresh_token"])


def _unused_tokens(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(RefreshToken)
                                  .where(RefreshToken.used_at.is_(None))) or 0)


def _tokens(bridge: Services) -> int:
    with bridge.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(RefreshToken)) or 0)


def _family(bridge: Services) -> RefreshFamily:
    with bridge.db.transaction() as session:
        return session.scalars(select(RefreshFamily)).one()


@pytest.mark.parametrize("spec,interval", [(DEMO_CLIENT, 5), (NO_REUSE, 0)])
def test_parallel_refreshes_of_one_token_never_fork_the_family(
        browser: Browser, bridge: Services, settings: Settings, spec: dict, interval: int) -> None:
    client = spec
    token = _login(browser, client)
    start_at = time.time() + (3.0 if bridge.db.dialect == "postgresql" else 0.3)
    results = _run_parallel(bridge, refresh_workers.refresh_once,
                            [(settings, client["client_id"], token, start_at)] * WORKERS)
    successors = {value for outcome, value in results if outcome == "ok"}
    family = _family(bridge)
    # The invariant: never two distinct valid successors.
    assert len(successors) <= 1, results
    if interval:
        # Within the reuse interval every racer gets the one successor; the family lives on.
        assert [outcome for outcome, _ in results] == ["ok"] * WORKERS, results
        assert family.revoked_at is None
        assert _unused_tokens(bridge) == 1
    else:
        # Without one, one racer wins; the losers look like a stolen token and kill the family.
        assert len([r for r in results if r[0] == "ok"]) <= 1, results
        assert {value for outcome, value in results if outcome == "error"} <= {
            "refresh_token_reused", "refresh_token_revoked"}
        assert family.revoked_reason == "reuse_detected"
        for successor in successors:
            assert browser.refresh(successor, client_id=client["client_id"]).status_code == 400


def test_nothing_is_minted_after_a_revocation_commits(browser: Browser, bridge: Services,
                                                      settings: Settings) -> None:
    token = _login(browser, DEMO_CLIENT)
    until = time.time() + (12.0 if bridge.db.dialect == "postgresql" else 2.0)
    # Each racer follows its own view of the chain; within the reuse interval they share it.
    with ThreadPoolExecutor(1) as revoker:
        def revoke_midway() -> float:
            # Once the racers are under way (a few rotations are in the database), however long
            # their processes took to start on a loaded machine.
            deadline = time.time() + 10
            while _tokens(bridge) < 4 and time.time() < deadline:
                time.sleep(0.05)
            client = settings.client("demo")
            assert client is not None
            Revocation(bridge).revoke(client, token)  # revokes the whole family, committed on return
            return time.time()

        revoked = revoker.submit(revoke_midway)
        attempts = _run_parallel(bridge, refresh_workers.refresh_chain,
                                 [(settings, "demo", token, until)] * 4)
        revoked_at = revoked.result()
    flat = [attempt for worker in attempts for attempt in worker]
    assert any(ok for _, ok in flat), "no refresh succeeded before the revocation"
    late = [(started, ok) for started, ok in flat if started > revoked_at and ok]
    assert late == [], f"{len(late)} refreshes succeeded after the revocation committed"
    assert _family(bridge).revoked_at is not None
