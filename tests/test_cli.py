"""The `bridge` command as an operator runs it: a real process, its output read as they read it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.clock import SystemClock
from bridge.config import load_settings
from bridge.dev.saml_idp import DevIdp
from bridge.idps.fetch import FetchPolicy
from bridge.idps.lifecycle import IdpAdmin
from bridge.services import build_services
from bridge.tokens.keys import generate_kek
from tests.conftest import TEST_KEK
from tests.test_admin_metadata_url import _Published
from tests.test_admin_metadata_url import published as metadata_server  # noqa: F401  (fixture)
from tests.test_metadata_fetch import Pki, pki  # noqa: F401  (the throwaway CA)

pytestmark = pytest.mark.slow  # every test here starts processes


def cli_environ(tmp_path: Path, kek: str = TEST_KEK) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "BRIDGE_IDP_METADATA_DIR": str(tmp_path / "idp"),
            "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
            "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance"), "BRIDGE_KEY_ENCRYPTION_KEY": kek}


def bridge_cli(tmp_path: Path, *args: str, kek: str = TEST_KEK,
               **settings: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "idp").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", *args],
        capture_output=True, text=True, cwd=tmp_path,
        env={**cli_environ(tmp_path, kek), **settings},
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_check_decrypts_every_stored_key_and_names_those_it_cannot(tmp_path: Path) -> None:
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    assert "every stored key decrypts" in ok(bridge_cli(tmp_path, "check"))  # keys made with A
    kids = [line.split()[0] for line in ok(bridge_cli(tmp_path, "keys", "list")).splitlines()]
    assert kids

    other = bridge_cli(tmp_path, "check", kek=generate_kek())  # checked with B

    assert other.returncode == 2 and "ok:" not in other.stdout
    assert "key_encryption_key: cannot decrypt signing key " + kids[0] in other.stderr
    assert "SAML key " in other.stderr
    assert "BRIDGE_KEY_ENCRYPTION_KEY is not the key they were stored with" in other.stderr


def test_a_key_the_node_cannot_decrypt_is_named_even_before_it_signs(tmp_path: Path) -> None:
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    ok(bridge_cli(tmp_path, "check"))
    # Another node, with another key, publishes the next key; it signs only in ten minutes.
    stranger = generate_kek()
    published = ok(bridge_cli(tmp_path, "keys", "rotate", kek=stranger))
    kid = published.splitlines()[0].removeprefix("published key ")

    result = bridge_cli(tmp_path, "check")

    assert result.returncode == 2
    assert f"signing key {kid}" in result.stderr and "SAML key" not in result.stderr


def test_commands_print_their_own_output_only(tmp_path: Path) -> None:
    first = bridge_cli(tmp_path, "db", "upgrade")
    again = bridge_cli(tmp_path, "db", "upgrade")
    check = bridge_cli(tmp_path, "check")

    assert ok(first).startswith("database upgraded from revision none to ")
    assert ok(again).startswith("database already at revision ") and "nothing to do" in again.stdout
    assert ok(check).startswith("ok: ")
    for result in (first, again, check):
        assert "alembic" not in result.stderr, result.stderr
        assert result.stderr == "", result.stderr


@pytest.mark.parametrize("age", ["30d", "12h"])
def test_a_scheduled_rotation_that_rotates_nothing_says_so(tmp_path: Path, age: str) -> None:
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    ok(bridge_cli(tmp_path, "check"))  # the first key, just made

    output = ok(bridge_cli(tmp_path, "keys", "rotate", "--if-older-than", age))

    assert output.splitlines()[0] == (
        f"no key rotated: every algorithm's newest key is younger than {age}")
    assert "published key" not in output
    assert ok(bridge_cli(tmp_path, "keys", "rotate", "--if-older-than", "0s")).startswith(
        "published key ")


@pytest.mark.parametrize(("args", "option"), [
    (("keys", "rotate", "--if-older-than", "30"), "--if-older-than"),
    (("keys", "rotate", "--if-older-than=-1d"), "--if-older-than"),
    (("keys", "rotate", "--if-older-than", "nan"), "--if-older-than"),
    (("admin", "create-token", "--name", "ci", "--expires-in", "inf"), "--expires-in"),
    (("admin", "create-token", "--name", "ci", "--expires-in", "3600"), "--expires-in"),
])
def test_a_duration_needs_its_unit_and_a_sane_value(tmp_path: Path, args: tuple[str, ...],
                                                    option: str) -> None:
    """Every duration option reads its value one way (bridge.durations): a bare number was
    seconds for one option and a NaN age rotated every key."""
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    before = ok(bridge_cli(tmp_path, "keys", "list"))

    refused = bridge_cli(tmp_path, *args)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"  - {option}: " in refused.stderr and "Traceback" not in refused.stderr
    assert ok(bridge_cli(tmp_path, "keys", "list")) == before


def test_idp_refresh_fetches_private_addresses_only_when_the_setting_allows(
        tmp_path: Path, metadata_server: str, pki: Pki,  # noqa: F811
        session_other_idp: DevIdp) -> None:
    """`bridge idp refresh` fetches under the same policy as the web process: a metadata URL on
    a loopback address is refused unless insecure_metadata_private_addresses is set."""
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    bridge = build_services(load_settings(environ=cli_environ(tmp_path)), SystemClock())
    try:
        _Published.body = session_other_idp.metadata_xml()
        IdpAdmin(bridge, FetchPolicy(allow_private=True, ca_bundle=pki.ca_file)).create_idp(
            "other", xml=None, url=metadata_server, settings={}, actor="test")
    finally:
        bridge.db.dispose()

    refused = bridge_cli(tmp_path, "idp", "refresh", "--all")

    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.startswith("other: failed: ")
    assert "metadata is only fetched from public addresses" in refused.stdout

    allowed = bridge_cli(tmp_path, "idp", "refresh", "--all",
                         BRIDGE_INSECURE_METADATA_PRIVATE_ADDRESSES="true")

    # Past the address check, it reaches the server; that the throwaway CA is not in the
    # trusted bundle is all that stops it now.
    assert "only fetched from public addresses" not in allowed.stdout
    assert "other: failed: " in allowed.stdout and "TLS with 127.0.0.1 failed" in allowed.stdout


def test_claims_preview_sees_an_idp_added_through_the_admin_pages(
        tmp_path: Path, session_other_idp: DevIdp) -> None:
    """`--idp` names any IdP in force, a file or one managed in the database."""
    ok(bridge_cli(tmp_path, "db", "upgrade"))
    bridge = build_services(load_settings(environ=cli_environ(tmp_path)), SystemClock())
    try:
        IdpAdmin(bridge).create_idp("contoso-okta", xml=session_other_idp.metadata_xml(),
                                    url=None, settings={"mapping": {"preset": "okta"}},
                                    actor="test")
    finally:
        bridge.db.dispose()
    facts = tmp_path / "attributes.json"
    facts.write_text('{"name_id": "00u1", "attributes": {"email": ["Bo@Contoso.com"], '
                     '"groups": ["Everyone"]}}')

    out = ok(bridge_cli(tmp_path, "claims", "preview", "--idp", "contoso-okta",
                        "--response", str(facts)))

    assert '"email": "Bo@Contoso.com"' in out
    unknown = bridge_cli(tmp_path, "claims", "preview", "--idp", "nobody", "--response", str(facts))
    assert unknown.returncode == 2
    assert "no IdP 'nobody' (known: contoso-okta)" in unknown.stderr


def test_claims_preview_without_a_database_reads_the_files(tmp_path: Path) -> None:
    facts = tmp_path / "attributes.json"
    facts.write_text('{"name_id": "u", "attributes": {}}')
    unknown = bridge_cli(tmp_path, "claims", "preview", "--idp", "corp", "--response", str(facts))
    assert unknown.returncode == 2 and "no IdP 'corp' (known: none)" in unknown.stderr
    assert not (tmp_path / "bridge.db").exists()  # a preview makes no database
