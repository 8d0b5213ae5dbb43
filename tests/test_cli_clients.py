"""`bridge clients` as an operator runs it: a real process against a real database, its output
read as they read it; the secret it prints works, is printed once and rotates with an overlap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.store.db import Database
from bridge.store.models import ClientSecret
from bridge.tokens.secrets_util import secret_hash
from tests.test_cli import bridge_cli, ok

pytestmark = pytest.mark.slow  # every test here starts processes

CLIENTS = json.dumps([{"client_id": "demo", "redirect_uris": ["http://127.0.0.1:8002/cb"],
                       "audience": "demo-api"}])


def _secret(output: str) -> str:
    lines = output.splitlines()
    return lines[lines.index(next(line for line in lines if "not shown again" in line)) + 1]


def test_register_rotate_and_delete_a_client(tmp_path: Path) -> None:
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    table = tmp_path / "reports.toml"
    table.write_text('client_id = "reports"\nredirect_uris = ["https://reports.example.com/cb"]\n'
                     'audience = "reports-api"\npublic = false\n')
    first = _secret(ok(bridge_cli(tmp_path, "clients", "create", "--from", str(table),
                                  BRIDGE_CLIENTS=CLIENTS)))
    assert len(first) >= 43
    listed = ok(bridge_cli(tmp_path, "clients", "list", BRIDGE_CLIENTS=CLIENTS))
    assert "demo" in listed and "file" in listed and "reports" in listed and "api" in listed
    assert first not in listed
    rotated = ok(bridge_cli(tmp_path, "clients", "rotate-secret", "reports", "--overlap", "1h"))
    second = _secret(rotated)
    assert second != first and "the older secret keeps working until" in rotated
    shown = ok(bridge_cli(tmp_path, "clients", "show", "reports"))
    assert first not in shown and second not in shown and "overlap" in shown
    db = Database(f"sqlite:///{tmp_path}/bridge.db")
    with db.transaction() as session:
        hashes = {row.secret_hash: row.expires_at for row in session.query(ClientSecret)}
    db.dispose()
    assert hashes[secret_hash(second)] is None and hashes[secret_hash(first)] is not None
    ok(bridge_cli(tmp_path, "clients", "delete", "reports"))
    assert "reports" not in ok(bridge_cli(tmp_path, "clients", "list"))


def test_refusals_name_the_problem_and_change_nothing(tmp_path: Path) -> None:
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    table = tmp_path / "bad.json"
    table.write_text(json.dumps({"client_id": "demo", "redirect_uris": ["http://x.example/cb"],
                                 "audience": "a"}))
    refused = bridge_cli(tmp_path, "clients", "create", "--from", str(table),
                         BRIDGE_CLIENTS=CLIENTS)
    assert refused.returncode == 2 and "must use https" in refused.stderr
    table.write_text(json.dumps({"client_id": "demo", "redirect_uris": ["https://x.example/cb"],
                                 "audience": "a"}))
    taken = bridge_cli(tmp_path, "clients", "create", "--from", str(table), BRIDGE_CLIENTS=CLIENTS)
    assert taken.returncode == 2 and "declared in the settings file" in taken.stderr
    odd = bridge_cli(tmp_path, "clients", "rotate-secret", "demo", "--overlap", "10")
    assert odd.returncode == 2 and "needs its unit" in odd.stderr
    assert "demo" not in ok(bridge_cli(tmp_path, "clients", "list"))
    unknown = bridge_cli(tmp_path, "clients", "show", "nobody")
    assert unknown.returncode == 1 and "client_unknown" in unknown.stderr
    assert "Traceback" not in unknown.stderr
