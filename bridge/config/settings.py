"""Typed settings: one entry point, validated completely at start-up.

Sources, later wins: embedded defaults, the TOML file named by ``BRIDGE_CONFIG`` (or ``--config``),
then ``BRIDGE_<KEY>`` environment variables. Secrets come from the environment or from a file named
by ``BRIDGE_<KEY>_FILE``, never from the TOML file. Every problem is reported at once, each naming
its key and the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import tomllib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.errors import ConfigError

ENVIRONMENTS = ("development", "production")
CLAIMS_VERSIONS = (1, 2)
TOKEN_ALGORITHMS = ("ES256", "EdDSA", "RS256")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: no final newline


@dataclass(frozen=True)
class ClientConfig:
    client_id: str
    redirect_uris: tuple[str, ...]
    audience: str
    claims_version: int = 1
    public: bool = True
    refresh_token_delivery: str = "body"
    # Confidential clients authenticate with this secret (client_secret_basic / _post). It comes
    # from the environment: BRIDGE_CLIENT_<ID>_SECRET, never from the TOML file.
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups", "offline_access")
    # Where the client starts its own SP-initiated login (OIDC "initiate_login_uri"). IdP-initiated
    # SAML logins are sent here instead of becoming tokens directly.
    login_start_uri: str | None = None
    # Refresh policy (RFC 9700 §4.14): absolute lifetime of a login's family (never extended by
    # rotation), idle timeout (0: none), and the interval in which a retried refresh gets the same
    # successor instead of revoking the family (several tabs, a lost response; 0: none).
    refresh_token_ttl_seconds: int = 8 * 3600
    refresh_idle_timeout_seconds: int = 0
    refresh_reuse_interval_seconds: int = 5
    token_signing_alg: str = "ES256"
    # Browser origins allowed to call the token endpoints with credentials (CORS); by default the
    # origins of the redirect URIs.
    allowed_origins: tuple[str, ...] = ()
    # RFC 8693 token exchange: audiences this client may exchange tokens for (empty: none).
    token_exchange_audiences: tuple[str, ...] = ()
    # RFC 7522: may this (confidential) client trade SAML assertions for access tokens?
    allow_saml_bearer: bool = False


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    base_url: str = "http://127.0.0.1:8000"
    database_url: str = ""
    instance_dir: str = "instance"
    idp_metadata_dir: str = "idp_metadata"
    sp_entity_id: str = ""
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 8 * 3600
    authorization_code_ttl_seconds: int = 60
    authn_request_ttl_seconds: int = 600
    token_signing_alg: str = "ES256"
    max_saml_response_bytes: int = 512 * 1024
    # Group budget of a version-2 access token: beyond it, groups move to /userinfo.
    groups_max_count: int = 50
    groups_max_bytes: int = 1024
    # Purging, metadata refresh and key rotation in a background thread (leased per job, so safe
    # with many nodes). Turn off only where an external scheduler runs the CLI commands instead.
    background_jobs: bool = True
    key_rotation_days: int = 30
    # The SP signing key (our AuthnRequests and logout messages; docs/decisions/0020): a new key
    # is published this long before it signs, the old one stays published this long after, and
    # the background job publishes a successor every ``sp_signing_key_rotation_days`` (0: only
    # by hand, or when the certificate nears its expiry).
    sp_signing_key_lead_days: int = 14
    sp_signing_key_retention_days: int = 7
    sp_signing_key_rotation_days: int = 0
    log_format: str = "json"
    log_level: str = "INFO"
    # Rate limits (https://limits.readthedocs.io notation), shared by every node when the storage
    # is Redis ("redis://host:6379/0"); "memory://" counts per process.
    rate_limit_storage_url: str = "memory://"
    rate_limit_authorize: str = "60/minute"
    rate_limit_acs: str = "60/minute"
    rate_limit_token_per_client: str = "1200/minute"
    # /token, /revoke and /logout together, per address (each checks client secrets).
    rate_limit_token_per_address: str = "300/minute"
    # /introspect per address: APIs may call it for every request they serve.
    rate_limit_introspect_per_address: str = "3000/minute"
    # Admin sign-ins started per address (each stores an outstanding SAML request).
    rate_limit_admin_login: str = "10/minute"
    # Reverse proxies in front of the bridge whose X-Forwarded-For may be believed (for the
    # address that rate limits and logs use). Nothing else ever depends on forwarded headers.
    trusted_proxy_hops: int = 0
    # The role (from an IdP's group->role rules) that lets a person into the admin pages.
    admin_role: str = "bridge-admin"
    # Metadata URLs may point at private or loopback addresses (never, unless you run your IdP
    # on an internal network and accept the SSRF exposure).
    insecure_metadata_private_addresses: bool = False
    # Origins of multi-tenant IdP services where several of our IdPs have their endpoints (e.g.
    # "https://login.microsoftonline.com"); elsewhere an IdP's Single Logout service must be on
    # an origin of its own (docs/decisions/0021-one-idp-per-endpoint.md).
    idp_shared_origins: tuple[str, ...] = ()
    # Claims versions being retired: version -> last day tokens of that version are issued.
    claims_sunset: dict[int, dt.date] = field(default_factory=dict)
    # Key-encryption key for signing keys at rest (a Fernet key). Secret: env or *_FILE only.
    key_encryption_key: str | None = field(default=None, repr=False)
    clients: tuple[ClientConfig, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def client(self, client_id: str) -> ClientConfig | None:
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None

    def acs_url(self, slug: str) -> str:
        return f"{self.base_url}/saml/{slug}/acs"

    def slo_url(self, slug: str) -> str:
        return f"{self.base_url}/saml/{slug}/slo"


_INT_LIMITS: dict[str, tuple[int, int]] = {
    "access_token_ttl_seconds": (60, 3600),
    "refresh_token_ttl_seconds": (300, 90 * 24 * 3600),
    "authorization_code_ttl_seconds": (5, 60),
    "authn_request_ttl_seconds": (60, 3600),
    "max_saml_response_bytes": (4 * 1024, 10 * 1024 * 1024),
    "groups_max_count": (0, 200),
    "key_rotation_days": (0, 365),
    "sp_signing_key_lead_days": (0, 365),
    "sp_signing_key_retention_days": (0, 365),
    "sp_signing_key_rotation_days": (0, 3650),
    "trusted_proxy_hops": (0, 5),
    "groups_max_bytes": (0, 8192),
}
_BOOL_KEYS = ("insecure_metadata_private_addresses", "background_jobs")
_STR_KEYS = (
    "rate_limit_storage_url",
    "rate_limit_authorize",
    "rate_limit_acs",
    "rate_limit_token_per_client",
    "rate_limit_token_per_address",
    "rate_limit_introspect_per_address",
    "rate_limit_admin_login",
    "log_format",
    "log_level",
    "admin_role",
    "env",
    "base_url",
    "database_url",
    "instance_dir",
    "idp_metadata_dir",
    "sp_entity_id",
    "token_signing_alg",
)
_SECRET_KEYS = ("key_encryption_key",)
# The keys of a [[clients]] table (docs/configuration.md lists each; a test holds it to this).
CLIENT_KEYS = frozenset({
    "client_id", "redirect_uris", "audience", "claims_version", "public", "refresh_token_delivery",
    "scopes", "login_start_uri", "refresh_token_ttl_seconds", "refresh_idle_timeout_seconds",
    "refresh_reuse_interval_seconds", "token_signing_alg", "allowed_origins",
    "token_exchange_audiences", "allow_saml_bearer"})
_KNOWN_KEYS = set(_STR_KEYS) | set(_INT_LIMITS) | set(_BOOL_KEYS) | {"clients", "claims_sunset",
                                                                     "idp_shared_origins"}


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated ``Settings``; raise ``ConfigError`` listing every problem."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    problems: list[str] = []

    path = config_path or env.get("BRIDGE_CONFIG")
    if path:
        try:
            with open(path, "rb") as handle:
                raw.update(tomllib.load(handle))
        except FileNotFoundError:
            problems.append(f"config file {path}: not found (set BRIDGE_CONFIG to an existing file)")
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"config file {path}: not valid TOML ({exc})")
    for key in sorted(set(raw) - _KNOWN_KEYS):
        problems.append(f"{key}: unknown setting (check the spelling; see docs/configuration.md)")
    for key in _SECRET_KEYS:
        if key in raw:
            problems.append(f"{key}: secrets are not read from the config file; "
                            f"set BRIDGE_{key.upper()} or BRIDGE_{key.upper()}_FILE")
            raw.pop(key)

    for key in (*_STR_KEYS, *_INT_LIMITS, *_BOOL_KEYS, "clients", "claims_sunset",
                "idp_shared_origins"):
        value = env.get(f"BRIDGE_{key.upper()}")
        if value is not None:
            raw[key] = value
    for key in _SECRET_KEYS:
        secret = _read_secret(env, f"BRIDGE_{key.upper()}", problems)
        if secret is not None:
            raw[key] = secret
    if overrides:
        raw.update(overrides)

    values: dict[str, Any] = {}
    for key in _STR_KEYS:
        if key in raw:
            if not isinstance(raw[key], str):
                problems.append(f"{key}: must be a string")
            else:
                values[key] = raw[key]
    for key, (low, high) in _INT_LIMITS.items():
        if key in raw:
            number = _as_int(raw[key])
            if number is None or not low <= number <= high:
                problems.append(f"{key}: must be an integer from {low} to {high}, got {raw[key]!r}")
            else:
                values[key] = number
    for key in _BOOL_KEYS:
        if key in raw:
            flag: Any = raw[key]
            if isinstance(flag, str) and flag.lower() in ("true", "false", "1", "0"):
                flag = flag.lower() in ("true", "1")
            if not isinstance(flag, bool):
                problems.append(f"{key}: must be true or false")
            else:
                values[key] = flag
    for key in _SECRET_KEYS:
        if key in raw:
            values[key] = raw[key]

    settings = Settings(**values)
    base_url = settings.base_url.rstrip("/")
    parts = urlsplit(base_url)
    if (parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment
            or not _plain(base_url)):
        problems.append(f"base_url: must be an absolute http(s) URL without query, spaces or "
                        f"control characters, got {base_url!r}")
    elif settings.env == "production" and parts.scheme != "https":
        problems.append("base_url: must use https in production (tokens and cookies depend on it)")
    if settings.env not in ENVIRONMENTS:
        problems.append(f"env: must be one of {', '.join(ENVIRONMENTS)}, got {settings.env!r}")
    for key in ("rate_limit_authorize", "rate_limit_acs", "rate_limit_token_per_client",
                "rate_limit_token_per_address", "rate_limit_introspect_per_address",
                "rate_limit_admin_login"):
        if not _valid_limit(getattr(settings, key)):
            problems.append(f"{key}: a rate like \"60/minute\" or \"10 per second\"")
    if not settings.rate_limit_storage_url.startswith(("memory://", "redis://", "rediss://")):
        problems.append("rate_limit_storage_url: memory:// or redis://host:port/db")
    if settings.log_format not in ("json", "text"):
        problems.append("log_format: json or text")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append("log_level: DEBUG, INFO, WARNING or ERROR")
    if settings.token_signing_alg not in TOKEN_ALGORITHMS:
        problems.append(f"token_signing_alg: must be one of {', '.join(TOKEN_ALGORITHMS)}")

    instance_dir = settings.instance_dir
    database_url = settings.database_url or f"sqlite:///{Path(instance_dir).resolve()}/bridge.db"
    if settings.sp_entity_id and not _plain(settings.sp_entity_id):
        problems.append(f"sp_entity_id: {settings.sp_entity_id[:200]!r} contains a space, a "
                        "control character or a non-ASCII character")
    if not database_url.startswith(("sqlite:///", "postgresql+psycopg://")):
        problems.append("database_url: must start with sqlite:/// or postgresql+psycopg://")

    clients = _parse_clients(raw.get("clients", []), env, problems, settings)
    sunset = _parse_sunset(raw.get("claims_sunset", {}), problems)
    shared_origins = _parse_origins(raw.get("idp_shared_origins", []), problems)

    if settings.env == "production" and settings.insecure_metadata_private_addresses:
        problems.append("insecure_metadata_private_addresses: refused in production")
    if settings.env == "production" and not settings.key_encryption_key:
        problems.append(
            "key_encryption_key: required in production to encrypt signing keys at rest; "
            "create one with `bridge keys new-kek` and set BRIDGE_KEY_ENCRYPTION_KEY "
            "or BRIDGE_KEY_ENCRYPTION_KEY_FILE"
        )

    if problems:
        raise ConfigError(problems)
    return Settings(
        **{
            **values,
            "base_url": base_url,
            "database_url": database_url,
            "sp_entity_id": settings.sp_entity_id or f"{base_url}/saml/metadata",
            "clients": tuple(clients),
            "claims_sunset": sunset,
            "idp_shared_origins": shared_origins,
        }
    )


def _valid_limit(text: str) -> bool:
    from limits import parse_many

    try:
        return bool(parse_many(text))
    except ValueError:
        return False


def _parse_origins(raw: Any, problems: list[str]) -> tuple[str, ...]:
    if isinstance(raw, str):  # BRIDGE_IDP_SHARED_ORIGINS: a JSON list
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = None
    if not isinstance(raw, list) or not all(
            isinstance(o, str) and _plain(o) and origin_of(o) == o and urlsplit(o).scheme == "https"
            for o in raw):
        problems.append('idp_shared_origins: a list of https origins such as '
                        '["https://login.microsoftonline.com"] (no path, no final slash)')
        return ()
    return tuple(o.lower() for o in raw)


def _parse_sunset(raw: Any, problems: list[str]) -> dict[int, dt.date]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = None
    if not isinstance(raw, dict):
        problems.append('claims_sunset: must be a table such as { "1" = 2027-06-30 }')
        return {}
    sunset: dict[int, dt.date] = {}
    for version, day in raw.items():
        if isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day)
            except ValueError:
                day = None
        if _as_int(version) not in CLAIMS_VERSIONS or not isinstance(day, dt.date):
            problems.append(f"claims_sunset.{version}: a claims version "
                            f"({', '.join(map(str, CLAIMS_VERSIONS))}) = a date")
            continue
        sunset[int(version)] = day
    return sunset


def _read_secret(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    if env.get(name):
        return env[name].strip()
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            problems.append(f"{name}_FILE: cannot read {file_name} ({exc.strerror})")
    return None


# Client secrets must hold at least 32 random bytes (RFC 6749 §10.10: credentials must be
# infeasible to guess).
MIN_SECRET_BITS = 256
NEW_SECRET_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")


_EMPTY_DEFLATE = len(zlib.compress(b"", 9))  # zlib's header, empty block and checksum


def secret_bits(secret: str) -> float:
    """How many random bits ``secret`` can hold at most: its length times the bits per character
    of the smallest usual alphabet it is written in (hex, base64 or base64url, printable ASCII).
    A secret made of few distinct characters ("xxxx...", "abab...") counts by those instead:
    generated secrets use most of their alphabet, typed ones do not."""
    text = secret.rstrip("=")
    if not text:
        return 0.0
    if set(text) <= _HEX:
        alphabet = 16
    elif set(text) <= _BASE64:
        alphabet = 64
    else:
        alphabet = 95
    # A random secret of 43+ characters shows at least 10 distinct ones all but surely (hex:
    # 64 draws from 16); fewer than that means it was not drawn at random.
    distinct = len(set(text))
    per_character = math.log2(alphabet) if distinct >= 10 else math.log2(max(distinct, 1))
    # A secret cannot hold more information than its shortest description: what DEFLATE saves on
    # repeats ("Welcome2024!" four times, an alphabet written out twice) it did not hold. Random
    # secrets do not compress (token_urlsafe(32): at least ~330 bits by this measure).
    compressed = 8 * (len(zlib.compress(text.encode(), 9)) - _EMPTY_DEFLATE)
    return min(len(text) * per_character, float(compressed))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _parse_clients(
    raw_clients: Any, env: Mapping[str, str], problems: list[str], defaults: Settings
) -> list[ClientConfig]:
    if isinstance(raw_clients, str):
        try:
            raw_clients = json.loads(raw_clients)
        except json.JSONDecodeError as exc:
            problems.append(f"clients: BRIDGE_CLIENTS must be a JSON list ({exc})")
            return []
    if not isinstance(raw_clients, list):
        problems.append("clients: must be a list of [[clients]] tables")
        return []
    clients: list[ClientConfig] = []
    seen: set[str] = set()
    secret_variables: dict[str, str] = {}
    for index, entry in enumerate(raw_clients):
        where = f"clients[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        client = _parse_client(where, entry, env, problems, defaults)
        if client is None:
            continue
        if client.client_id in seen:
            problems.append(f"{where}.client_id: {client.client_id!r} is registered twice")
        seen.add(client.client_id)
        if not client.public:
            # Two client IDs that differ only in case or punctuation read one secret variable:
            # either client could then authenticate as the other.
            variable = client_secret_variable(client.client_id)
            other = secret_variables.setdefault(variable, client.client_id)
            if other != client.client_id:
                problems.append(f"{where}.client_id: {client.client_id!r} and {other!r} would "
                                f"share the secret {variable}; rename one of them")
        clients.append(client)
    return clients


def client_secret_variable(client_id: str) -> str:
    """The environment variable that holds a confidential client's secret."""
    return "BRIDGE_CLIENT_" + re.sub(r"[^A-Z0-9]", "_", client_id.upper()) + "_SECRET"


def _parse_client(
    where: str, entry: dict[str, Any], env: Mapping[str, str], problems: list[str],
    defaults: Settings,
) -> ClientConfig | None:
    before = len(problems)
    for key in sorted(set(entry) - CLIENT_KEYS):
        problems.append(f"{where}.{key}: unknown client setting")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        problems.append(f"{where}.client_id: required, letters, digits, '.', '_' or '-'")
        return None
    where = f"clients[{client_id}]"
    uris = entry.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        problems.append(f"{where}.redirect_uris: a non-empty list of absolute URLs is required")
        uris = []
    for uri in uris:
        _check_client_url(f"{where}.redirect_uris", uri, problems)
    login_start_uri = entry.get("login_start_uri")
    if login_start_uri is not None:
        if not isinstance(login_start_uri, str):
            problems.append(f"{where}.login_start_uri: must be a URL")
            login_start_uri = None
        else:
            _check_client_url(f"{where}.login_start_uri", login_start_uri, problems)
    audience = entry.get("audience")
    if not isinstance(audience, str) or not audience:
        problems.append(f"{where}.audience: required (the `aud` the client's APIs check)")
    version = entry.get("claims_version", 1)
    if version not in CLAIMS_VERSIONS:
        problems.append(f"{where}.claims_version: must be one of {list(CLAIMS_VERSIONS)}")
    public = entry.get("public", True)
    if not isinstance(public, bool):
        problems.append(f"{where}.public: must be true or false")
    delivery = entry.get("refresh_token_delivery", "body")
    if delivery not in ("body", "cookie"):
        problems.append(f"{where}.refresh_token_delivery: must be \"body\" or \"cookie\"")
    scopes = entry.get("scopes", list(ClientConfig.scopes))
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        problems.append(f"{where}.scopes: must be a list of strings")
        scopes = []
    policy: dict[str, int] = {}
    for key, default, (low, high) in (
        ("refresh_token_ttl_seconds", defaults.refresh_token_ttl_seconds, (300, 90 * 24 * 3600)),
        ("refresh_idle_timeout_seconds", 0, (0, 90 * 24 * 3600)),
        ("refresh_reuse_interval_seconds", 5, (0, 60)),
    ):
        number = _as_int(entry.get(key, default))
        if number is None or not low <= number <= high:
            problems.append(f"{where}.{key}: must be an integer from {low} to {high}")
        else:
            policy[key] = number
    alg = entry.get("token_signing_alg", defaults.token_signing_alg)
    if alg not in TOKEN_ALGORITHMS:
        problems.append(f"{where}.token_signing_alg: must be one of {', '.join(TOKEN_ALGORITHMS)}")
    origins = entry.get("allowed_origins")
    if origins is None:
        origins = sorted({origin_of(u) for u in uris if origin_of(u)})
    elif not isinstance(origins, list) or not all(
            isinstance(o, str) and origin_of(o) == o for o in origins):
        problems.append(f"{where}.allowed_origins: a list of origins like \"https://app.example.com\" "
                        "(scheme, host and port; no path, never \"*\")")
        origins = []
    exchange = entry.get("token_exchange_audiences", [])
    if not isinstance(exchange, list) or not all(isinstance(a, str) and a for a in exchange):
        problems.append(f"{where}.token_exchange_audiences: must be a list of audiences")
        exchange = []
    saml_bearer = entry.get("allow_saml_bearer", False)
    if not isinstance(saml_bearer, bool) or (saml_bearer and public is not False):
        problems.append(f"{where}.allow_saml_bearer: true or false, and only for confidential "
                        "clients")
        saml_bearer = False
    if exchange and public is not False:
        problems.append(f"{where}.token_exchange_audiences: only confidential clients may "
                        "exchange tokens")
    secret_var = client_secret_variable(client_id)
    secret = _read_secret(env, secret_var, problems)
    if public is False and not secret:
        problems.append(f"{where}: a confidential client needs a secret in {secret_var} "
                        f"or {secret_var}_FILE")
    elif secret and secret_bits(secret) < MIN_SECRET_BITS:
        # Client secrets are checked online by /token, /revoke, /logout and /introspect: only
        # one too large to search makes the per-address rate limits beside the point.
        problems.append(f"{secret_var}: the secret of client {client_id!r} is too weak "
                        f"(about {int(secret_bits(secret))} random bits; at least "
                        f"{MIN_SECRET_BITS}, i.e. 32 random bytes, are required); create one "
                        f"with `{NEW_SECRET_COMMAND}` and set it in {secret_var} or "
                        f"{secret_var}_FILE")
    if len(problems) > before:
        return None
    return ClientConfig(
        client_id=client_id,
        redirect_uris=tuple(uris),
        audience=str(audience),
        claims_version=int(version),
        public=bool(public),
        refresh_token_delivery=str(delivery),
        client_secret=secret,
        scopes=tuple(scopes),
        login_start_uri=login_start_uri,
        token_signing_alg=str(alg),
        allowed_origins=tuple(origins),
        token_exchange_audiences=tuple(exchange),
        allow_saml_bearer=saml_bearer,
        **policy,
    )


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL (RFC 6454), or "" when it has none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _plain(url: str) -> bool:
    """Printable ASCII without spaces (RFC 3986 §2): urlsplit silently drops tabs and newlines,
    which then break the Location header the URL is written into."""
    return all("!" <= c <= "~" for c in url)


def _check_client_url(where: str, uri: str, problems: list[str]) -> None:
    parts = urlsplit(uri)
    if not _plain(uri):
        problems.append(f"{where}: {uri!r} contains a space, a control character or a non-ASCII "
                        "character (percent-encode them)")
    elif parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        problems.append(f"{where}: {uri!r} must be an absolute URL without fragment")
    elif parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        problems.append(f"{where}: {uri!r} must use https (http only for loopback)")
