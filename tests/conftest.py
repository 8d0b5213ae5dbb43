"""Shared fixtures: a real database (SQLite and PostgreSQL), a real pysaml2 IdP, the bridge app.

PostgreSQL tests skip only outside CI; with ``CI`` set, an unreachable PostgreSQL fails the run.
Every test that runs on PostgreSQL is marked ``postgres`` (the database parameter applies it), so
``-m "not postgres"`` runs each such test once, on SQLite (``scripts/test --fast``).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings

from bridge.config import Settings, load_settings
from bridge.dev.saml_idp import DevIdp
from bridge.saml.sp import sp_metadata
from bridge.services import Services, build_services
from bridge.store.db import Database
from bridge.store.models import Base
from bridge.tokens.keys import generate_kek
from bridge.web import create_app
from tests import leaks
from tests.databases import create_postgres_database, drop_postgres_database
from tests.helpers import Browser

# Hypothesis budgets (tests/attacks/test_fuzz.py): "ci" is reproducible (the same examples every
# run), "fast" is a smoke test for the fast lane (`--hypothesis-profile=fast`), "thorough" is the
# default elsewhere. FUZZ_EXAMPLES still overrides the example count of any of them.
hypothesis_settings.register_profile("thorough", max_examples=500, deadline=None)
hypothesis_settings.register_profile("ci", max_examples=500, deadline=None, derandomize=True,
                                     print_blob=True)
hypothesis_settings.register_profile("fast", max_examples=25, deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "thorough")


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(WorkerLeaks(), "worker-leaks")


class WorkerLeaks:
    """Under pytest-xdist each worker scans its own log lines; what it found travels to the
    controller in ``workeroutput``, which fails the run like a leak found in-process."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.lines = 0

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: object, error: object) -> None:
        output = getattr(node, "workeroutput", {})
        self.found.extend(output.get("leaks", []))
        self.lines += output.get("log_lines", 0)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Every log line of the run, formatted as in production, for the secret scan below.
    root = logging.getLogger()
    root.addHandler(leaks.Capture())
    root.setLevel(logging.DEBUG)
    leaks.remember(TEST_KEK)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = leaks.leaked()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["leaks"] = found
        workeroutput["log_lines"] = len(leaks.LINES)
        return
    collected = session.config.pluginmanager.get_plugin("worker-leaks")
    if isinstance(collected, WorkerLeaks):
        found = sorted({*found, *collected.found})
    if found:
        session.config.get_terminal_writer().line(
            f"SECRETS IN LOGS: {len(found)} token(s), code(s), cookie(s) or key(s) appeared in "
            f"log output: {found[:5]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif isinstance(collected, WorkerLeaks) and collected.lines:
        session.config.get_terminal_writer().line(
            f"log scan: {collected.lines} log lines in the workers, no leak")
    elif leaks.LINES:
        session.config.get_terminal_writer().line(
            f"log scan: {len(leaks.SECRETS)} secrets, {len(leaks.LINES)} log lines, no leak")


DEMO_CLIENT = {
    "client_id": "demo",
    "redirect_uris": ["http://127.0.0.1:8002/callback"],
    "audience": "demo-api",
    "claims_version": 1,
    "public": True,
}
CONFIDENTIAL_CLIENT = {
    "client_id": "backend",
    "redirect_uris": ["https://backend.example.com/callback"],
    "audience": "backend-api",
    "public": False,
}
# 32 random bytes, base64url: the least the bridge accepts (config.MIN_SECRET_BITS).
CONFIDENTIAL_SECRET = "Kq3uV0b8Xw1sR6mT9yZc2dF5hJ7nL4pA0eG8iO3kWvQ"
# One key-encryption key for the session, since the SP's encryption key outlives a test.
TEST_KEK = generate_kek()


# The one PostgreSQL parameter: marked, so that `-m "not postgres"` keeps the SQLite half.
POSTGRES_PARAM = pytest.param("postgresql", marks=pytest.mark.postgres)


@pytest.fixture(params=["sqlite", POSTGRES_PARAM])
def upgrade_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own on each backend, for tests of a migration with rows in place."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/upgrade.db"
        return
    name = f"bridge_upgrade_{uuid.uuid4().hex[:12]}"
    yield create_postgres_database(name)
    drop_postgres_database(name)


@pytest.fixture(scope="session", params=["sqlite", POSTGRES_PARAM])
def migrated_database(request: pytest.FixtureRequest,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One migrated database per backend for the whole session."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "bridge.db"
        database = Database(f"sqlite:///{path}")
        database.upgrade()
        yield database
        database.dispose()
        return
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    database = Database(create_postgres_database(name))
    database.upgrade()
    yield database
    database.dispose()
    drop_postgres_database(name)


# The SP's RSA encryption key takes a while to generate: it survives between tests, like a real
# deployment's would. Every other table starts empty.
KEPT_TABLES = {"saml_keys"}


@pytest.fixture
def database(migrated_database: Database) -> Database:
    """The session's database, emptied before each test."""
    with migrated_database.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                session.execute(table.delete())
    return migrated_database


@pytest.fixture(scope="session")
def idp_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev-idp-keys")


@pytest.fixture
def idp_dir(tmp_path: Path) -> Path:
    path = tmp_path / "idp_metadata"
    path.mkdir()
    return path


@pytest.fixture
def app_holder() -> dict[str, Flask]:
    return {}


BRIDGE_URL = "https://bridge.example.com"
TEST_IDP_SLUGS = ("dev", "other", "portal")


def test_sp_metadata() -> bytes:
    """What the test IdPs know about us: our entity ID and the ACS of every test IdP slug. (Built
    once: the pysaml2 servers live for the whole session, as an IdP's configuration would.)"""
    return sp_metadata(f"{BRIDGE_URL}/saml/metadata",
                       [f"{BRIDGE_URL}/saml/{slug}/acs" for slug in TEST_IDP_SLUGS])


test_sp_metadata.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def session_dev_idp(idp_key_dir: Path) -> DevIdp:
    return DevIdp(base_url="https://idp.example.org", state_dir=idp_key_dir,
                  sp_metadata=test_sp_metadata)


@pytest.fixture(scope="session")
def session_other_idp(tmp_path_factory: pytest.TempPathFactory) -> DevIdp:
    """A second pysaml2 IdP with a key of its own (slug "other" when registered)."""
    return DevIdp(base_url="https://other-idp.example.net",
                  state_dir=tmp_path_factory.mktemp("other-idp-keys"),
                  sp_metadata=test_sp_metadata)


@pytest.fixture
def dev_idp(session_dev_idp: DevIdp, idp_dir: Path) -> DevIdp:
    """The pysaml2 IdP, registered with this test's bridge as ``dev``."""
    session_dev_idp.write_metadata(idp_dir)
    return session_dev_idp


def make_settings(database: Database, idp_dir: Path, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "base_url": BRIDGE_URL,
        "database_url": database.url,
        "idp_metadata_dir": str(idp_dir),
        "instance_dir": str(tmp_path / "instance"),
        "clients": [DEMO_CLIENT, CONFIDENTIAL_CLIENT],
        "background_jobs": False,  # tests run jobs themselves, when they mean to
        # Tests post thousands of responses from one address; tests/test_rate_limits.py lowers these.
        "rate_limit_authorize": "100000/minute",
        "rate_limit_acs": "100000/minute",
        "rate_limit_token_per_client": "100000/minute",
        "rate_limit_token_per_address": "100000/minute",
    }
    values.update(overrides)
    return load_settings(environ={"BRIDGE_CLIENT_BACKEND_SECRET": CONFIDENTIAL_SECRET,
                                  "BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK},
                         overrides=values)


@pytest.fixture
def settings(database: Database, idp_dir: Path, tmp_path: Path, dev_idp: DevIdp) -> Settings:
    return make_settings(database, idp_dir, tmp_path)


class MovableClock:
    """The system clock, which a test moves forward (``advance``) instead of sleeping, e.g. past
    the IdP registry's recheck interval."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def bridge(settings: Settings) -> Iterator[Services]:
    the_bridge = build_services(settings, MovableClock())
    yield the_bridge
    the_bridge.db.dispose()


@pytest.fixture
def app(bridge: Services, app_holder: dict[str, Flask]) -> Flask:
    application = create_app(services=bridge)
    app_holder["app"] = application
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def browser(client: FlaskClient, dev_idp: DevIdp, bridge: Services) -> Browser:
    return Browser(client, dev_idp, bridge)
