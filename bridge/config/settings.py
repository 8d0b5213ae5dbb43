"""The bridge's settings: each declared once, with its default, range or check, whether it is a
secret, and the line of docs/configuration.md that explains it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.config import sources
from bridge.config.clients import (
    CLAIMS_VERSIONS,
    MIN_SECRET_BITS,
    NEW_SECRET_COMMAND,
    TOKEN_ALGORITHMS,
    ClientConfig,
    parse_clients,
    secret_bits,
)
from bridge.config.problems import Problems
from bridge.config.spec import Check, one_of, setting
from bridge.config.urls import origin_of, plain
from bridge.ip_forms import parse_nat64_prefixes

ENVIRONMENTS = ("development", "production")
NINETY_DAYS = 90 * 24 * 3600
RATE_LIMIT = 'a rate like "60/minute" or "10 per second"'


def _rate(text: str) -> str | None:
    from limits import parse_many

    try:
        return None if parse_many(text) else RATE_LIMIT
    except ValueError:
        return RATE_LIMIT


def _env(value: str) -> str | None:
    return None if value in ENVIRONMENTS else (
        f"must be one of {', '.join(ENVIRONMENTS)}, got {value!r}")


def _plain_entity_id(value: str) -> str | None:
    if not value or plain(value):
        return None
    return f"{value[:200]!r} contains a space, a control character or a non-ASCII character"


def _database_url(value: str) -> str | None:
    if not value or value.startswith(("sqlite:///", "postgresql+psycopg://")):
        return None
    return "must start with sqlite:/// or postgresql+psycopg://"


_LOG_LEVEL: Check = lambda value: (  # noqa: E731
    None if value.upper() in ("DEBUG", "INFO", "WARNING", "ERROR")
    else "DEBUG, INFO, WARNING or ERROR")
_STORAGE: Check = lambda value: (  # noqa: E731
    None if value.startswith(("memory://", "redis://", "rediss://"))
    else "memory:// or redis://host:port/db")


def _parse_origins(raw: Any, problems: Problems, _env: Mapping[str, str],
                   _settings: Mapping[str, Any]) -> tuple[str, ...]:
    if isinstance(raw, str):  # BRIDGE_IDP_SHARED_ORIGINS: a JSON list
        raw = sources.json_value(raw)
    if not isinstance(raw, list) or not all(
            isinstance(o, str) and plain(o) and origin_of(o) == o and urlsplit(o).scheme == "https"
            for o in raw):
        problems.add('a list of https origins such as ["https://login.microsoftonline.com"] '
                     '(no path, no final slash)')
        return ()
    return tuple(o.lower() for o in raw)


def _parse_nat64_prefixes(raw: Any, problems: Problems, _env: Mapping[str, str],
                          _settings: Mapping[str, Any]) -> tuple[str, ...]:
    if isinstance(raw, str):  # BRIDGE_NAT64_PREFIXES: a JSON list
        raw = sources.json_value(raw)
    prefixes, found = parse_nat64_prefixes(raw)
    for problem in found:
        problems.add(problem)
    return prefixes


def _parse_sunset(raw: Any, problems: Problems, _env: Mapping[str, str],
                  _settings: Mapping[str, Any]) -> dict[int, dt.date]:
    if isinstance(raw, str):
        raw = sources.json_value(raw)
    if not isinstance(raw, dict):
        problems.add('must be a table such as { "1" = 2027-06-30 }')
        return {}
    sunset: dict[int, dt.date] = {}
    for version, day in raw.items():
        if isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day)
            except ValueError:
                day = None
        if sources.as_int(version) not in CLAIMS_VERSIONS or not isinstance(day, dt.date):
            problems.at(str(version)).add(
                f"a claims version ({', '.join(map(str, CLAIMS_VERSIONS))}) = a date")
            continue
        sunset[int(version)] = day
    return sunset


@dataclass(frozen=True)
class Settings:
    env: str = setting(
        "development", check=_env,
        doc="`development` or `production`. Production requires an https `base_url` and a "
        "`key_encryption_key`, and refuses `insecure_*` settings.")
    base_url: str = setting(
        "http://127.0.0.1:8000",
        doc="The public URL: the `iss` of every token, and the base of every SAML URL checked "
        "(ACS, Single Logout). Never taken from the Host or X-Forwarded-* headers. https in "
        "production.")
    database_url: str = setting(
        "", check=_database_url, default_doc="a SQLite file, `<instance_dir>/bridge.db`",
        doc="`sqlite:///PATH` or `postgresql+psycopg://user@host/db` (many nodes need "
        "PostgreSQL). It usually holds a password: set it as `BRIDGE_DATABASE_URL` from your "
        "secret store.")
    instance_dir: str = setting(
        "instance", doc="Local state: the SQLite file by default, and in development the "
        "generated key-encryption key.")
    idp_metadata_dir: str = setting(
        "idp_metadata", doc="IdP metadata files, `<slug>.xml` with optional `<slug>.toml` "
        "settings (below). Must exist; may be empty.")
    sp_entity_id: str = setting(
        "", check=_plain_entity_id, default_doc="`<base_url>/saml/metadata`",
        doc="The bridge's SAML entity ID: the audience IdPs must name.")
    access_token_ttl_seconds: int = setting(
        600, between=(60, 3600), doc="Access token lifetime, 60 to 3600.")
    refresh_token_ttl_seconds: int = setting(
        8 * 3600, between=(300, NINETY_DAYS),
        doc="Absolute lifetime of a login's refresh family (never extended by rotation), 300 to "
        "7776000; the default of each client's own.")
    authorization_code_ttl_seconds: int = setting(
        60, between=(5, 60), doc="Authorization code lifetime, 5 to 60.")
    authn_request_ttl_seconds: int = setting(
        600, between=(60, 3600), doc="How long a person may take at the IdP before the login "
        "must start again, 60 to 3600.")
    token_signing_alg: str = setting(
        "ES256", check=one_of(TOKEN_ALGORITHMS),
        doc="`ES256`, `EdDSA` or `RS256`: the default of each client's own.")
    signing_key_cache_seconds: int = setting(
        15, between=(1, 300), doc="How long a node trusts its cached view of the token signing "
        "keys: a key rotated on one node signs on every node within this time, 1 to 300.")
    max_saml_response_bytes: int = setting(
        512 * 1024, between=(4 * 1024, 10 * 1024 * 1024),
        doc="Larger SAML responses are refused before parsing, 4096 to 10485760.")
    groups_max_count: int = setting(
        50, between=(0, 200), doc="Claims version 2: at most this many groups in an access "
        "token (0 to 200); beyond it they move to `/userinfo` and the token says "
        "`groups_overage`.")
    groups_max_bytes: int = setting(
        1024, between=(0, 8192), doc="Claims version 2: at most this many bytes of groups in "
        "an access token (0 to 8192).")
    dpop_proof_max_age_seconds: int = setting(
        60, between=(5, 300), doc="DPoP (RFC 9449): how old a proof's `iat` may be, 5 to 300 "
        "([DPoP](dpop.md)).")
    dpop_clock_skew_seconds: int = setting(
        5, between=(0, 60), doc="DPoP: how far clients' clocks may be off ours, in both "
        "directions, 0 to 60.")
    dpop_nonce_required: bool = setting(
        True, doc="DPoP: proofs must carry a server nonce (RFC 9449 §8), handed out in the "
        "`DPoP-Nonce` header; one made before the nonce was seen is refused with "
        "`use_dpop_nonce`.")
    dpop_nonce_lifetime_seconds: int = setting(
        300, between=(30, 3600), doc="DPoP: a nonce is good for this window and the next, 30 "
        "to 3600; every node recognizes every node's nonces.")
    background_jobs: bool = setting(
        True, doc="Purging, metadata refresh and key rotation in a background thread of each "
        "process, run once across all nodes. `false`: run `bridge db purge`, `bridge idp "
        "refresh`, `bridge keys rotate --if-older-than 30d` and `bridge saml-keys rotate "
        "--if-due` from your own scheduler (`docs/operations.md`).")
    key_rotation_days: int = setting(
        30, between=(0, 365), doc="The background jobs rotate signing keys older than this, 0 "
        "to 365 (0: only `bridge keys rotate`).")
    # The SP signing key (docs/decisions/0020).
    sp_signing_key_lead_days: int = setting(
        14, between=(0, 365), doc="A new SP signing key is in our SP metadata this long before "
        "it signs (`bridge saml-keys rotate`), so IdPs that read our metadata trust it first.")
    sp_signing_key_retention_days: int = setting(
        7, between=(0, 365), doc="A retired SP signing key stays in our SP metadata this long "
        "after it stopped signing.")
    sp_signing_key_rotation_days: int = setting(
        0, between=(0, 3650), doc="The background jobs rotate the SP signing key at this age "
        "(0: by hand); it is always rotated ahead of its certificate's expiry.")
    log_format: str = setting(
        "json", check=one_of(("json", "text"), "json or text"),
        doc="`json` (one object per line, for collectors) or `text` (for a terminal).")
    log_level: str = setting(
        "INFO", check=_LOG_LEVEL, doc="`DEBUG`, `INFO`, `WARNING` or `ERROR`.")
    rate_limit_storage_url: str = setting(
        "memory://", check=_STORAGE,
        doc="Where rate limits are counted: `memory://` per process, `redis://host:6379/0` (or "
        "`rediss://`) shared by every node. Redis unreachable: limits are skipped and each skip "
        "logged.")
    rate_limit_authorize: str = setting(
        "60/minute", check=_rate, doc="`/authorize` per address. Rates as `60/minute`, `10 per "
        "second`, several separated by `;`.")
    rate_limit_acs: str = setting(
        "60/minute", check=_rate, doc="The ACS per address; Single Logout "
        "(`/saml/<slug>/slo`) has its own count at the same rate.")
    rate_limit_token_per_client: str = setting(
        "1200/minute", check=_rate, doc="`/token` per client, counted once the client is "
        "authenticated; a public client's per client and address.")
    rate_limit_token_per_address: str = setting(
        "300/minute", check=_rate, doc="`/token`, `/revoke` and `/logout` together, per address "
        "(each checks client secrets).")
    rate_limit_introspect_per_address: str = setting(
        "3000/minute", check=_rate, doc="`/introspect` per address (APIs may call it for every "
        "request they serve).")
    rate_limit_admin_login: str = setting(
        "10/minute", check=_rate,
        doc="Admin sign-ins started (`/admin/login/<slug>`) per address.")
    rate_limit_scim_per_address: str = setting(
        "1800/minute", check=_rate, doc="Every request to the SCIM endpoints "
        "(`/scim/v2/<slug>`, all IdPs together) per address, counted before the bearer token is "
        "checked. Generous for mass offboarding: Entra ID expects an endpoint to take 25 "
        "requests a second, and may send two per deactivation (`docs/deprovisioning.md`).")
    rate_limit_security_events_per_address: str = setting(
        "1800/minute", check=_rate, doc="Security Event Tokens pushed to `/events/<slug>` per "
        "address (all IdPs together), counted before the SET is verified: one request per event, "
        "so thousands of deactivations pass in minutes (`docs/deprovisioning.md`).")
    trusted_proxy_hops: int = setting(
        0, between=(0, 5), doc="How many proxies in front may name the client's address in "
        "`X-Forwarded-For` (rate limits and logs use it), 0 to 5. Nothing else ever trusts "
        "forwarded headers.")
    admin_role: str = setting(
        "bridge-admin", doc="The role (from an IdP's group-to-role rules) that lets a person "
        "into the admin pages.")
    idp_shared_origins: tuple[str, ...] = setting(
        (), parse=_parse_origins,
        doc="Origins of multi-tenant IdP services where several of your IdPs have endpoints, "
        "such as `[\"https://login.microsoftonline.com\"]` (https, no path). Elsewhere an IdP's "
        "Single Logout service must be on an origin where no other IdP has an endpoint "
        "(start-up and the admin API refuse it, `idp_endpoint_in_use`); on a listed origin each "
        "IdP's endpoint URLs must differ instead, which trusts that service to keep its tenants "
        "apart (`docs/decisions/0021-one-idp-per-endpoint.md`). `BRIDGE_IDP_SHARED_ORIGINS` "
        "takes a JSON list.")
    nat64_prefixes: tuple[str, ...] = setting(
        (), parse=_parse_nat64_prefixes,
        doc="The network-specific NAT64 prefixes (RFC 6052, /96 only) of translators you run, "
        "whose IPv4 side is the internet, such as `[\"2001:db8:64::/96\"]`. An address under "
        "one stands for the IPv4 address in its last 32 bits, as under the well-known "
        "`64:ff9b::/96`: the metadata fetch judges it by that address (an internal one is "
        "refused, and no `metadata_internal_hosts` entry reaches through it), and the "
        "per-address rate limits count it as that address, so whoever sends from the prefix "
        "chooses the budget: list no one else's. Global unicast, unique local or under "
        "`64:ff9b::/32`. `BRIDGE_NAT64_PREFIXES` takes a JSON list.")
    insecure_metadata_private_addresses: bool = setting(
        False, doc="Let metadata URLs point at private, loopback and link-local addresses (an "
        "SSRF exposure). Refused in production.")
    claims_sunset: dict[int, dt.date] = setting(
        factory=dict, parse=_parse_sunset, default_doc="none",
        doc="Claims versions being retired, `{ \"1\" = 2027-06-30 }`: the day announced as the "
        "last one tokens of that version are issued (token responses say so). The bridge does "
        "not stop issuing them by itself: move the clients to another `claims_version` by then.")
    key_encryption_key: str | None = setting(
        None, secret=True, default_doc="generated into `instance_dir` in development",
        doc="**Secret** (`BRIDGE_KEY_ENCRYPTION_KEY` or `_FILE`): encrypts signing keys and the "
        "SP's SAML keys at rest; make one with `bridge keys new-kek`. Required in production. "
        "`bridge check` and `/readyz` fail, naming each key, when it cannot decrypt the stored "
        "keys.")
    metrics_token: str | None = setting(
        None, secret=True, default_doc="none",
        doc="**Secret** (`BRIDGE_METRICS_TOKEN` or `_FILE`): when set, `/metrics` requires "
        "`Authorization: Bearer <token>`; otherwise keep `/metrics` off the public ingress.")
    clients: tuple[ClientConfig, ...] = setting(
        (), parse=parse_clients, default_doc="none",
        doc="The OAuth clients, `[[clients]]` tables (below). More can be managed through the "
        "admin API ([clients](clients.md#managed-clients)); these stay as declared here.")
    client_secret_overlap_seconds: int = setting(
        86400, between=(0, 30 * 86400),
        doc="Managed clients: after a secret rotation the old secret keeps working this long, "
        "so that every instance of the client can move to the new one, 0 to 2592000 (each "
        "rotation may ask for its own; 0 ends the old secret at once).")
    registration_token: str | None = setting(
        None, secret=True, default_doc="none: registration is off",
        doc="**Secret** (`BRIDGE_REGISTRATION_TOKEN` or `_FILE`): when set, `POST /register` "
        "accepts RFC 7591 dynamic client registrations from callers that send it as their "
        "initial access token (`Authorization: Bearer <token>`); at least 32 random bytes "
        "([clients](clients.md#dynamic-registration)).")

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


def check_together(values: dict[str, Any], problems: Problems) -> None:
    """What one setting alone cannot say; fills in the defaults made of other settings."""
    base_url = values["base_url"].rstrip("/")
    parts = urlsplit(base_url)
    if (parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment
            or not plain(base_url)):
        problems.at("base_url").add("must be an absolute http(s) URL without query, spaces or "
                                    f"control characters, got {base_url!r}")
    elif values["env"] == "production" and parts.scheme != "https":
        problems.at("base_url").add("must use https in production (tokens and cookies depend "
                                    "on it)")
    if values["env"] == "production" and values["insecure_metadata_private_addresses"]:
        problems.at("insecure_metadata_private_addresses").add("refused in production")
    if values["env"] == "production" and not values["key_encryption_key"]:
        problems.at("key_encryption_key").add(
            "required in production to encrypt signing keys at rest; create one with "
            "`bridge keys new-kek` and set BRIDGE_KEY_ENCRYPTION_KEY or "
            "BRIDGE_KEY_ENCRYPTION_KEY_FILE")
    token = values.get("registration_token")
    if token and secret_bits(token) < MIN_SECRET_BITS:
        # Anyone holding it registers clients: it must be as hard to guess as a client secret.
        problems.at("registration_token").add(
            f"too weak (about {int(secret_bits(token))} random bits; at least {MIN_SECRET_BITS}); "
            f"create one with `{NEW_SECRET_COMMAND}`")
    values["base_url"] = base_url
    values["sp_entity_id"] = values["sp_entity_id"] or f"{base_url}/saml/metadata"
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{Path(values['instance_dir']).resolve()}/bridge.db"
