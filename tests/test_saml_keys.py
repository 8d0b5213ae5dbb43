"""The SP's SAML keys in the database: encrypted at rest, the signing key rolled over with a
publication lead and a retention time, rotation by hand, on a schedule and ahead of expiry, seen by
every node; their expiry in `bridge saml-keys list` and in the metrics."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge.clock import FixedClock
from bridge.errors import ConfigError
from bridge.sp_keys.certificates import CERTIFICATE_DAYS
from bridge.sp_keys.manager import SamlKeys
from bridge.store.db import Database
from bridge.store.models import SamlKey, SigningKey
from tests.conftest import TEST_KEK
from tests.databases import create_postgres_database, drop_postgres_database

DAY = 86400.0
LEAD, RETENTION = 14 * DAY, 7 * DAY


@pytest.fixture
def empty_keys(database: Database) -> Iterator[Database]:
    """No SP keys at the start (the session keeps them between tests), none of ours after."""
    with database.transaction() as session:
        session.query(SamlKey).filter(SamlKey.use == "signing").delete()
    yield database
    with database.transaction() as session:
        session.query(SamlKey).filter(SamlKey.use == "signing").delete()


def keys_at(database: Database, clock: FixedClock, kek: str = TEST_KEK) -> SamlKeys:
    return SamlKeys(database, Fernet(kek.encode()), clock, entity_id="https://sp.example/md",
                    lead_seconds=LEAD, retention_seconds=RETENTION)


def states(keys: SamlKeys) -> dict[str, str]:
    return {k.id: k.state for k in keys.report() if k.use == "signing"}


def test_first_start_makes_a_signing_key_that_signs_at_once(empty_keys: Database) -> None:
    clock = FixedClock(time.time())
    keys = keys_at(empty_keys, clock)
    keys.ensure_keys()
    keys.ensure_keys()  # idempotent: every node calls it at start-up
    signing = keys.signing_key()
    assert keys.signing_certificates() == [signing.certificate_pem]
    assert list(states(keys).values()) == ["active"]
    with empty_keys.transaction() as session:
        row = session.get(SamlKey, signing.id)
        # Encrypted at rest with the key-encryption key, like the token signing keys.
        assert b"PRIVATE KEY" not in row.private_key_encrypted
        assert Fernet(TEST_KEK.encode()).decrypt(row.private_key_encrypted).decode() == (
            signing.private_key_pem)
    other_kek = keys_at(empty_keys, clock, kek=Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        other_kek.signing_key()


def test_rollover_publishes_before_signing_and_keeps_the_old_key_published(
        empty_keys: Database) -> None:
    clock = FixedClock(time.time())
    keys = keys_at(empty_keys, clock)
    keys.ensure_keys()
    old = keys.signing_key()
    new = keys.rotate()
    assert new.active_at == clock.now() + LEAD
    # During the lead time: both published, the old one signs.
    assert keys.signing_certificates() == [old.certificate_pem, new.certificate_pem]
    assert states(keys) == {old.id: "active", new.id: "next"}
    clock.advance(LEAD - 1)
    assert keys.signing_key().id == old.id
    # From the lead's end: the new one signs, the old one is still published.
    clock.advance(1)
    assert keys.signing_key().id == new.id
    assert keys.signing_certificates() == [new.certificate_pem, old.certificate_pem]
    assert states(keys) == {old.id: "retired", new.id: "active"}
    # After the retention time the old certificate leaves the metadata.
    clock.advance(RETENTION - 1)
    assert len(keys.signing_certificates()) == 2
    clock.advance(1)
    assert keys.signing_certificates() == [new.certificate_pem]
    assert states(keys) == {old.id: "unpublished", new.id: "active"}


def test_rotation_with_no_lead_signs_at_once(empty_keys: Database) -> None:
    """For a compromised key: `bridge saml-keys rotate --lead 0`."""
    clock = FixedClock(time.time())
    keys = keys_at(empty_keys, clock)
    keys.ensure_keys()
    old = keys.signing_key()
    new = keys.rotate(lead_seconds=0)
    assert keys.signing_key().id == new.id
    assert states(keys) == {old.id: "retired", new.id: "active"}


def test_a_rotation_made_elsewhere_reaches_every_node(empty_keys: Database) -> None:
    clock = FixedClock(time.time())
    node_a, node_b = keys_at(empty_keys, clock), keys_at(empty_keys, clock)
    node_a.ensure_keys()
    old = node_b.signing_key()
    new = node_a.rotate(lead_seconds=0)  # `bridge saml-keys rotate`, another process
    clock.advance(16)  # node B's cached view of the table expires (15 s)
    assert node_b.signing_key().id == new.id != old.id


def test_scheduled_rotation_by_age_and_ahead_of_expiry(empty_keys: Database) -> None:
    clock = FixedClock(time.time())
    keys = keys_at(empty_keys, clock)
    keys.ensure_keys()
    assert keys.rotation_due(rotation_seconds=None) is None
    assert keys.rotation_due(rotation_seconds=90 * DAY) is None
    clock.advance(90 * DAY)
    assert keys.rotation_due(rotation_seconds=90 * DAY) == "rotation interval"
    assert keys.rotation_due(rotation_seconds=None) is None
    assert keys.rotate_if_due(rotation_seconds=90 * DAY).startswith("published ")
    # A successor is waiting for its turn: nothing more until it signs.
    assert keys.rotation_due(rotation_seconds=1) is None
    assert keys.rotate_if_due(rotation_seconds=1) == "not due"
    # Near the certificate's expiry a successor is published even with no interval set, a
    # full lead time (plus a margin) before the certificate would expire.
    created = clock.now()
    clock.advance(LEAD)
    active = keys.signing_key()
    clock.at = created + CERTIFICATE_DAYS * DAY - LEAD - 31 * DAY
    assert keys.rotation_due(rotation_seconds=None) is None
    clock.advance(2 * DAY)
    assert keys.rotation_due(rotation_seconds=None) == "certificate expiry"
    assert {k.id: k for k in keys.report()}[active.id].warning is None  # 43 days left
    clock.advance(14 * DAY)
    assert {k.id: k for k in keys.report()}[active.id].warning == "expires_within_30_days"


def saml_keys_cli(database: Database, tmp_path: Path, *args: str,
                  **environment: str) -> subprocess.CompletedProcess[str]:
    """`bridge saml-keys ...` as an operator runs it, against ``database``."""
    (tmp_path / "idp").mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "BRIDGE_DATABASE_URL": database.url,
           "BRIDGE_IDP_METADATA_DIR": str(tmp_path / "idp"),
           "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance"),
           "BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK, "BRIDGE_LOG_LEVEL": "WARNING", **environment}
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "bridge.cli", "saml-keys", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


@pytest.mark.slow  # runs the CLI in a process
def test_cli_rotates_and_lists_the_keys_with_their_expiry(empty_keys: Database,
                                                          tmp_path: Path) -> None:
    def bridge(*args: str) -> str:
        result = saml_keys_cli(empty_keys, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    rotated = bridge("rotate", "--lead", "2d")
    assert "published SP signing key" in rotated
    listing = bridge("list").splitlines()
    assert listing[0].split()[:3] == ["key", "use", "state"]
    rows = {line.split()[0]: line for line in listing[1:]}
    signing = [line for line in rows.values() if " signing " in line]
    assert sorted(line.split()[2] for line in signing) == ["active", "next"]
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=CERTIFICATE_DAYS)).strftime("%Y-%m-%d")
    assert all(expiry in line or "(1824 days)" in line for line in signing)
    assert bridge("rotate", "--if-due").startswith("not due")


def _signing_rows(database: Database) -> list[tuple[str, float | None]]:
    with database.transaction() as session:
        return sorted((r.id, r.active_at) for r in session.query(SamlKey)
                      .filter(SamlKey.use == "signing"))


@pytest.mark.parametrize("lead", ["14", "3.5", "-3d", "inf", "nan", "1e3d", "366d", "99999999d",
                                  "14 days", ""])
@pytest.mark.slow  # runs the CLI in a process
def test_a_lead_that_is_not_a_duration_with_its_unit_is_refused_and_changes_nothing(
        empty_keys: Database, tmp_path: Path, lead: str) -> None:
    """`--lead 14` was 14 seconds (meant: days), `--lead=-3d` signed at once, and `--lead inf`
    committed a key that never signs and broke `saml-keys list` and the scheduled rotation."""
    assert saml_keys_cli(empty_keys, tmp_path, "list").returncode == 0  # the first key
    before = _signing_rows(empty_keys)

    refused = saml_keys_cli(empty_keys, tmp_path, "rotate", f"--lead={lead}")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith("bridge: invalid configuration:\n  - --lead: "), refused.stderr
    assert "Traceback" not in refused.stderr
    assert _signing_rows(empty_keys) == before


@pytest.mark.slow  # runs the CLI in a process
def test_the_lead_is_read_with_its_unit(empty_keys: Database, tmp_path: Path) -> None:
    assert saml_keys_cli(empty_keys, tmp_path, "list").returncode == 0  # the first key
    for lead, seconds in (("14d", 14 * DAY), ("12h", 12 * 3600.0), ("90m", 5400.0),
                          ("1.5d", 1.5 * DAY), ("0", 0.0)):
        before, started = dict(_signing_rows(empty_keys)), time.time()
        result = saml_keys_cli(empty_keys, tmp_path, "rotate", "--lead", lead)
        assert result.returncode == 0, result.stderr
        [(_, active_at)] = [row for row in _signing_rows(empty_keys) if row[0] not in before]
        assert started + seconds <= (active_at or 0.0) <= time.time() + seconds
    assert saml_keys_cli(empty_keys, tmp_path, "rotate", "--now", "--lead", "2d").returncode == 2
    assert saml_keys_cli(empty_keys, tmp_path, "rotate", "--if-due", "--now").returncode == 2
    # Withdrawing the key that signs needs a successor that signs at once.
    assert saml_keys_cli(empty_keys, tmp_path, "rotate", "--withdraw-old").returncode == 2
    assert saml_keys_cli(empty_keys, tmp_path, "rotate", "--withdraw-old",
                         "--lead", "1h").returncode == 2


@pytest.mark.parametrize("stored", [float("inf"), float("nan"), 1e300])
@pytest.mark.slow  # runs the CLI in a process
def test_a_start_time_stored_by_an_unchecked_lead_breaks_neither_the_listing_nor_the_rotation(
        empty_keys: Database, tmp_path: Path, stored: float) -> None:
    """A key an earlier version committed with an infinite (or absurd) start time: it never
    signs, `saml-keys list` shows it, and the scheduled rotation is not held back by it."""
    assert saml_keys_cli(empty_keys, tmp_path, "rotate", "--lead", "1d").returncode == 0
    with empty_keys.transaction() as session:
        waiting = session.query(SamlKey).filter(SamlKey.use == "signing",
                                                SamlKey.retired_at.is_(None)).one()
        waiting.active_at = stored
        for row in session.query(SamlKey).filter(SamlKey.use == "signing"):
            row.created_at -= 2 * DAY  # both older than the one-day rotation interval below
            if row is not waiting:
                row.retired_at = row.unpublish_at = None  # as the unchecked rotation left it

    listing = saml_keys_cli(empty_keys, tmp_path, "list")
    assert listing.returncode == 0, listing.stderr
    assert any(line.startswith(f"{waiting.id} ") for line in listing.stdout.splitlines())

    due = saml_keys_cli(empty_keys, tmp_path, "rotate", "--if-due",
                        BRIDGE_SP_SIGNING_KEY_ROTATION_DAYS="1")
    assert due.returncode == 0, due.stderr
    assert due.stdout.startswith("published "), due.stdout
    states = {line.split()[0]: line.split()[2] for line in due.stdout.splitlines()[2:]
              if " signing " in line}
    assert states[waiting.id] == "retired" and sorted(states.values()).count("next") == 1


def test_metrics_show_the_days_left_of_our_certificates(client: FlaskClient) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    lines = [line for line in text.splitlines()
             if line.startswith("bridge_sp_certificate_days_left{")]
    assert any('use="signing"' in line and 'state="active"' in line for line in lines)
    assert any('use="encryption"' in line for line in lines)
    assert all(1800 < float(line.rsplit(" ", 1)[1]) <= CERTIFICATE_DAYS for line in lines)


@pytest.mark.postgres
@pytest.mark.slow
def test_nodes_starting_together_on_a_new_database_make_one_key_of_each_kind(
        tmp_path: Path) -> None:
    """Several nodes' first start at once on a fresh PostgreSQL database (a new deployment's
    replicas): each read the key tables empty and added keys of its own, so there were as many
    SP signing keys as nodes, each published and "active"."""
    name = f"bridge_first_start_{uuid.uuid4().hex[:10]}"
    url = create_postgres_database(name)
    try:
        (tmp_path / "idp").mkdir()
        env = {"PATH": "/usr/bin:/bin", "BRIDGE_DATABASE_URL": url,
               "BRIDGE_IDP_METADATA_DIR": str(tmp_path / "idp"),
               "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance"),
               "BRIDGE_KEY_ENCRYPTION_KEY": TEST_KEK, "BRIDGE_LOG_LEVEL": "WARNING",
               # RSA token keys take long enough to make that a race the token keys ran too.
               "BRIDGE_TOKEN_SIGNING_ALG": "RS256"}
        command = [sys.executable, "-W", "ignore", "-m", "bridge.cli"]
        migrated = subprocess.run([*command, "db", "upgrade"], capture_output=True, text=True,
                                  env=env, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        nodes = [subprocess.Popen([*command, "check"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
                 for _ in range(4)]
        for node in nodes:
            _, errors = node.communicate(timeout=120)
            assert node.returncode == 0, errors
        database = Database(url)
        try:
            with database.transaction() as session:
                saml = Counter(session.scalars(select(SamlKey.use)))
                token = Counter(session.scalars(select(SigningKey.alg)))
        finally:
            database.dispose()
        assert saml == {"encryption": 1, "signing": 1}
        assert token == {"RS256": 1}
    finally:
        drop_postgres_database(name)
