"""Settings: defaults, environment overrides, and start-up refusal that names the key."""

from __future__ import annotations

import secrets
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


def test_redirect_uris_are_exact_urls_in_the_file_too(tmp_path: Path) -> None:
    # The rules managed clients are held to (bridge.clients) are the file's own.
    config = tmp_path / "bridge.toml"
    config.write_text('[[clients]]\nclient_id = "web"\naudience = "api"\nredirect_uris = ['
                      '"https://*.example.com/cb", "https://app.example.com/cb#", '
                      '"https://me@app.example.com/cb"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    text = str(caught.value)
    assert "'https://*.example.com/cb' must not contain a wildcard" in text
    assert "'https://app.example.com/cb#' must be an absolute URL without fragment" in text
    assert "'https://me@app.example.com/cb' must not contain a user name or password" in text


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
    strong = secrets.token_urlsafe(32)
    settings = load_settings(environ={"BRIDGE_CLIENT_SVC_SECRET": strong},
                             overrides={"clients": clients})
    assert settings.client("svc").client_secret == strong  # type: ignore[union-attr]


SVC = [{"client_id": "svc", "redirect_uris": ["https://svc.example.com/cb"], "audience": "api",
        "public": False}]


STRONG = [
    "U7CUMQgc1_bczjiF1sERw77LIi2FDt439cvRe_LEqbk",  # secrets.token_urlsafe(32)
    "a480f9db88f24381bb667e397605ea44c9c0451dddb22afdcd97a174ca3d5b04",  # token_hex(32)
    "OmLF1flSMCa6ulGndS3k27aTAe8/hNrjY1LMyP1rM+s=",  # openssl rand -base64 32
]


@pytest.mark.parametrize("weak", [
    "x" * 64,                                   # long, but one character
    "s3cret-for-tests-only-0123456789",         # typed, 32 characters
    "cCZ3Mgtc1d-R4zXLN4dtIcF22JKlLQxkkD1Jkg2uPQ",  # 31 random bytes, base64url
    "e58cfdf288126e95dc6be37e87caf3af4cf4b8cbd8d2345cd3f84cb7838c38",  # 31 in hex
    "0123456789" * 3,                           # digits: hex alphabet, too short
    "correct horse battery",
    "Welcome2024!" * 4,                         # long, mixed classes, one word repeated
    "0123456789abcdef" * 4,                     # every hex digit, in order, four times
    "abcdefghijklmnopqrstuvwxyz" * 2,           # the alphabet twice
])
def test_client_secrets_need_32_random_bytes(weak: str) -> None:
    # Client secrets are checked online by four endpoints: one that is short enough to search
    # must stop start-up, naming the variable and how to make a good one.
    for strong in STRONG:
        settings = load_settings(environ={"BRIDGE_CLIENT_SVC_SECRET": strong},
                                 overrides={"clients": SVC})
        assert settings.client("svc").client_secret == strong  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"BRIDGE_CLIENT_SVC_SECRET": weak}, overrides={"clients": SVC})
    text = str(caught.value)
    assert "BRIDGE_CLIENT_SVC_SECRET: the secret of client 'svc' is too weak" in text
    assert "secrets.token_urlsafe(32)" in text and "BRIDGE_CLIENT_SVC_SECRET_FILE" in text
    assert weak not in text  # the message never repeats the secret


def test_weak_secrets_are_refused_from_files_too(tmp_path: Path) -> None:
    path = tmp_path / "svc-secret"
    path.write_text("changeme\n")
    with pytest.raises(ConfigError, match="BRIDGE_CLIENT_SVC_SECRET: .* too weak"):
        load_settings(environ={"BRIDGE_CLIENT_SVC_SECRET_FILE": str(path)},
                      overrides={"clients": SVC})


def test_missing_config_file_names_it() -> None:
    with pytest.raises(ConfigError, match="nowhere.toml: not found"):
        load_settings("/nowhere.toml", environ={})


def test_two_clients_cannot_share_one_secret_variable() -> None:
    """`svc.a` and `SVC-A` both read BRIDGE_CLIENT_SVC_A_SECRET: either client could
    authenticate as the other with the one secret the operator set."""
    clients = [{"client_id": client_id, "redirect_uris": ["https://svc.example.com/cb"],
                "audience": "api", "public": False} for client_id in ("svc.a", "SVC-A")]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"BRIDGE_CLIENT_SVC_A_SECRET": secrets.token_urlsafe(32)},
                      overrides={"clients": clients})
    assert ("clients[1].client_id: 'SVC-A' and 'svc.a' would share the secret "
            "BRIDGE_CLIENT_SVC_A_SECRET") in str(caught.value)


def test_urls_with_control_characters_or_spaces_are_refused(tmp_path: Path) -> None:
    """urlsplit drops tabs and newlines, so such a URL passed the checks and then broke the
    Location header (a 500) or the XML it was written into."""
    config = tmp_path / "bridge.toml"
    config.write_text('base_url = "https://sso.example.com/a\\nb"\n'
                      'sp_entity_id = "https://sso.example.com/saml\\tmetadata"\n'
                      '[[clients]]\nclient_id = "web"\naudience = "api"\n'
                      'redirect_uris = ["https://app.example.com/cb\\r\\nSet-Cookie: a=b"]\n'
                      'login_start_uri = "https://app.example.com/start here"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    text = str(caught.value)
    assert "base_url: must be an absolute http(s) URL without query, spaces or control" in text
    assert "sp_entity_id: " in text
    assert "clients[web].redirect_uris: 'https://app.example.com/cb\\r\\nSet-Cookie: a=b' " \
           "contains a space, a control character" in text
    assert "clients[web].login_start_uri: 'https://app.example.com/start here' contains" in text


def test_shared_idp_origins_are_https_origins(tmp_path: Path) -> None:
    listed = load_settings(environ={
        "BRIDGE_IDP_SHARED_ORIGINS": '["https://login.microsoftonline.com"]'})
    assert listed.idp_shared_origins == ("https://login.microsoftonline.com",)
    for value in ('["https://login.example.com/tenant"]', '["http://login.example.com"]',
                  '["https://login.example.com/"]', '"https://login.example.com"', "[1]",
                  "not json"):
        with pytest.raises(ConfigError) as caught:
            load_settings(environ={"BRIDGE_IDP_SHARED_ORIGINS": value})
        assert "idp_shared_origins: a list of https origins" in str(caught.value), value


def test_metrics_token_is_a_secret(tmp_path: Path) -> None:
    assert load_settings(environ={"BRIDGE_METRICS_TOKEN": "scrape"}).metrics_token == "scrape"
    secret = tmp_path / "metrics-token"
    secret.write_text("from-a-file\n")
    settings = load_settings(environ={"BRIDGE_METRICS_TOKEN_FILE": str(secret)})
    assert settings.metrics_token == "from-a-file"
    config = tmp_path / "bridge.toml"
    config.write_text('metrics_token = "scrape"\n')
    with pytest.raises(ConfigError, match="metrics_token: secrets are not read from the config "
                                          "file; set BRIDGE_METRICS_TOKEN or BRIDGE_METRICS_TOKEN_FILE"):
        load_settings(config, environ={})


def test_a_blank_secret_stops_start_up_instead_of_counting_as_unset(tmp_path: Path) -> None:
    # A metrics token of spaces once left /metrics open: blank is a mistake, never "no token".
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"BRIDGE_METRICS_TOKEN": "   "})
    assert refused.value.problems == [
        "BRIDGE_METRICS_TOKEN: is set but blank; give the secret or unset it"]
    blank_file = tmp_path / "metrics-token"
    blank_file.write_text("\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"BRIDGE_METRICS_TOKEN_FILE": str(blank_file)})
    assert refused.value.problems == [
        f"BRIDGE_METRICS_TOKEN_FILE ({blank_file}): is set but blank; give the secret or unset it"]
    assert load_settings(environ={"BRIDGE_METRICS_TOKEN": " scrape-secret "}).metrics_token == (
        "scrape-secret")


def test_nat64_prefixes_are_ipv6_96_prefixes() -> None:
    listed = load_settings(environ={
        "BRIDGE_NAT64_PREFIXES":
            '["2001:DB8:64::/96", "2001:db8:64::/96", "64:ff9b:1:2::/96", "fd00:64::/96"]'})
    assert listed.nat64_prefixes == ("2001:db8:64::/96", "64:ff9b:1:2::/96", "fd00:64::/96")
    assert load_settings(environ={}).nat64_prefixes == ()
    for value, says in [
        ('["2001:db8:64::/64"]', "only /96 prefixes"),
        ('["2001:db8:64::1/96"]', "is not an IPv6 prefix"),  # bits set past the prefix
        ('["192.0.2.0/24"]', "is not an IPv6 prefix"),
        ('["::ffff:0:0/96"]', "a NAT64 prefix is global unicast"),  # IPv4-mapped
        ('["2002:808:808::/96"]', "a NAT64 prefix is global unicast"),  # 6to4: its own IPv4
        ('["2001:0:1::/96"]', "a NAT64 prefix is global unicast"),  # Teredo
        ('["2001:4:112::/96"]', "a NAT64 prefix is global unicast"),  # special purpose
        ('["fd00:ec2::/96"]', "a NAT64 prefix is global unicast"),  # AWS instance metadata
        ('["fe80::/96"]', "a NAT64 prefix is global unicast"),
        ('["ff02::/96"]', "a NAT64 prefix is global unicast"),
        ('["fec0::/96"]', "a NAT64 prefix is global unicast"),
        ('["::/96"]', "a NAT64 prefix is global unicast"),
        ('["2001:db8:64::%eth0/96"]', "with no zone"),
        ('["2001:db8:64::"]', "only /96 prefixes"),  # a single address is a /128
        ('"2001:db8:64::/96"', "a list of IPv6 /96 prefixes"),
        ("[96]", "a list of IPv6 /96 prefixes"),
        ("not json", "a list of IPv6 /96 prefixes"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_settings(environ={"BRIDGE_NAT64_PREFIXES": value})
        assert "nat64_prefixes: " in str(caught.value) and says in str(caught.value), value
