"""Settings: defaults, environment overrides, and start-up refusal that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError


def test_embedded_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.sp_entity_id == "http://127.0.0.1:8000/saml/metadata"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "instance/bridge.db")
    assert settings.idp_metadata_dir == "idp_metadata"
    assert settings.access_token_ttl_seconds == 600
    assert settings.token_signing_alg == "ES256"


def test_toml_file_and_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('base_url = "https://sso.example.com/"\naccess_token_ttl_seconds = 300\n'
                      '[[clients]]\nclient_id = "web"\nredirect_uris = ["https://app.example.com/cb"]\n'
                      'audience = "api"\n')
    settings = load_settings(config, environ={"BRIDGE_ACCESS_TOKEN_TTL_SECONDS": "900"})
    assert settings.base_url == "https://sso.example.com"  # trailing slash removed
    assert settings.access_token_ttl_seconds == 900
    client = settings.client("web")
    assert client is not None and client.public and client.claims_version == 1


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('base_url = "ftp://x"\naccess_token_ttl_seconds = 5\ncolour = "blue"\n'
                      '[[clients]]\nclient_id = "web"\nredirect_uris = ["http://app.example.com/cb"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    text = str(caught.value)
    assert "base_url" in text
    assert "access_token_ttl_seconds: must be an integer from 60 to 3600" in text
    assert "colour: unknown setting" in text
    assert "clients[web].audience: required" in text
    assert "must use https" in text


def test_secrets_are_refused_in_the_file(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('key_encryption_key = "abc"\n')
    with pytest.raises(ConfigError, match="BRIDGE_KEY_ENCRYPTION_KEY"):
        load_settings(config, environ={})


def test_production_requires_https_and_a_key_encryption_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"BRIDGE_ENV": "production"})
    text = str(caught.value)
    assert "base_url: must use https in production" in text
    assert "bridge keys new-kek" in text


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "kek"
    secret.write_text("a-key\n")
    settings = load_settings(environ={"BRIDGE_KEY_ENCRYPTION_KEY_FILE": str(secret)})
    assert settings.key_encryption_key == "a-key"


def test_confidential_client_needs_a_secret() -> None:
    clients = [{"client_id": "svc", "redirect_uris": ["https://svc.example.com/cb"],
                "audience": "api", "public": False}]
    with pytest.raises(ConfigError, match="BRIDGE_CLIENT_SVC_SECRET"):
        load_settings(environ={}, overrides={"clients": clients})
    settings = load_settings(environ={"BRIDGE_CLIENT_SVC_SECRET": "x" * 32},
                             overrides={"clients": clients})
    assert settings.client("svc").client_secret == "x" * 32  # type: ignore[union-attr]


def test_missing_config_file_names_it() -> None:
    with pytest.raises(ConfigError, match="nowhere.toml: not found"):
        load_settings("/nowhere.toml", environ={})


def test_two_clients_cannot_share_one_secret_variable() -> None:
    """`svc.a` and `SVC-A` both read BRIDGE_CLIENT_SVC_A_SECRET: either client could
    authenticate as the other with the one secret the operator set."""
    clients = [{"client_id": client_id, "redirect_uris": ["https://svc.example.com/cb"],
                "audience": "api", "public": False} for client_id in ("svc.a", "SVC-A")]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"BRIDGE_CLIENT_SVC_A_SECRET": "x" * 32},
                      overrides={"clients": clients})
    assert ("clients[1].client_id: 'SVC-A' and 'svc.a' would share the secret "
            "BRIDGE_CLIENT_SVC_A_SECRET") in str(caught.value)
