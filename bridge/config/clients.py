"""The OAuth clients: ``[[clients]]`` tables (or ``BRIDGE_CLIENTS`` as JSON), each checked
completely, and each confidential client's secret from the environment."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config import sources
from bridge.config.problems import Problems
from bridge.config.spec import setting, specs
from bridge.config.urls import origin_of, plain, split_url

CLAIMS_VERSIONS = (1, 2, 3)
DPOP_MODES = ("off", "allowed", "required")
# The first claims version whose schema holds cnf (RFC 7800), which DPoP-bound tokens carry.
DPOP_CLAIMS_VERSION = 3
TOKEN_ALGORITHMS = ("ES256", "EdDSA", "RS256")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: no final newline
NINETY_DAYS = 90 * 24 * 3600
MAX_URL_LENGTH = 2048  # browsers and proxies commonly refuse longer URLs


@dataclass(frozen=True)
class ClientConfig:
    client_id: str = setting(required=True, doc="Letters, digits, `.`, `_`, `-`; at most 64.")
    redirect_uris: tuple[str, ...] = setting(
        required=True, doc="Absolute URLs, matched exactly; https (http only on loopback).")
    audience: str = setting(
        required=True, doc="The `aud` of the client's access tokens: what its APIs check.")
    claims_version: int = setting(
        1, doc="`1`, `2` or `3` ([clients](clients.md#claims-a-versioned-contract)).")
    public: bool = setting(
        True, doc="`true`: PKCE S256 required, no secret. `false`: a confidential client with a "
        "secret.")
    refresh_token_delivery: str = setting(
        "body", doc="`body`, or `cookie` (HttpOnly; Secure; SameSite=Strict, for SPAs).")
    # Confidential clients authenticate with this secret (client_secret_basic / _post). It comes
    # from the environment: BRIDGE_CLIENT_<ID>_SECRET, never from the TOML file.
    client_secret: str | None = setting(None, secret=True, doc="")
    scopes: tuple[str, ...] = setting(
        ("openid", "profile", "email", "groups", "offline_access"),
        doc="The scopes the client may ask for.")
    login_start_uri: str | None = setting(
        None, default_doc="none",
        doc="Where IdP-initiated logins are sent so that the client starts a normal login.")
    # Refresh policy (RFC 9700 §4.14).
    refresh_token_ttl_seconds: int = setting(
        8 * 3600, between=(300, NINETY_DAYS), default_doc="the setting above",
        doc="Absolute lifetime of a login's refresh family, 300 to 7776000.")
    refresh_idle_timeout_seconds: int = setting(
        0, between=(0, NINETY_DAYS), doc="A family unused this long ends, 0 (none) to 7776000.")
    refresh_reuse_interval_seconds: int = setting(
        5, between=(0, 60), doc="A refresh retried within this interval gets the same successor "
        "instead of ending the login, 0 to 60.")
    token_signing_alg: str = setting(
        "ES256", default_doc="the setting above", doc="`ES256`, `EdDSA` or `RS256`.")
    allowed_origins: tuple[str, ...] = setting(
        (), default_doc="the origins of `redirect_uris`",
        doc="Browser origins allowed to call the token endpoints with credentials (CORS), e.g. "
        "`\"https://app.example.com\"`.")
    token_exchange_audiences: tuple[str, ...] = setting(
        (), doc="Audiences this client may exchange tokens for (RFC 8693); confidential clients "
        "only.")
    allow_saml_bearer: bool = setting(
        False, doc="May trade SAML assertions for access tokens (RFC 7522); confidential clients "
        "only.")
    dpop: str = setting(
        "off", doc="DPoP (RFC 9449): `off` (a `DPoP` header is ignored), `allowed` (tokens are "
        "bound to the key of a proof when one is sent) or `required`; not `off` needs "
        "`claims_version = 3` ([DPoP](dpop.md)).")


# The keys of a [[clients]] table: every declared field but the secret (environment only).
CLIENT_KEYS = frozenset(name for name, (_, spec) in specs(ClientConfig).items() if not spec.secret)
_POLICY = ("refresh_token_ttl_seconds", "refresh_idle_timeout_seconds",
           "refresh_reuse_interval_seconds")


def client_secret_variable(client_id: str) -> str:
    """The environment variable that holds a confidential client's secret."""
    return "BRIDGE_CLIENT_" + re.sub(r"[^A-Z0-9]", "_", client_id.upper()) + "_SECRET"


def parse_clients(raw_clients: Any, problems: Problems, env: Mapping[str, str],
                  settings: Mapping[str, Any]) -> tuple[ClientConfig, ...]:
    if isinstance(raw_clients, str):
        raw_clients = sources.json_value(raw_clients, problems, "BRIDGE_CLIENTS must be a JSON list")
        if raw_clients is None:
            return ()
    if not isinstance(raw_clients, list):
        problems.add("must be a list of [[clients]] tables")
        return ()
    clients: list[ClientConfig] = []
    seen: set[str] = set()
    secret_variables: dict[str, str] = {}
    for index, entry in enumerate(raw_clients):
        at = problems.at(f"[{index}]")
        if not isinstance(entry, dict):
            at.add("must be a table")
            continue
        client = _parse_client(at, entry, env, settings)
        if client is None:
            continue
        if client.client_id in seen:
            at.at("client_id").add(f"{client.client_id!r} is registered twice")
        seen.add(client.client_id)
        if not client.public:
            # Two client IDs that differ only in case or punctuation read one secret variable:
            # either client could then authenticate as the other.
            variable = client_secret_variable(client.client_id)
            other = secret_variables.setdefault(variable, client.client_id)
            if other != client.client_id:
                at.at("client_id").add(f"{client.client_id!r} and {other!r} would share the "
                                       f"secret {variable}; rename one of them")
        clients.append(client)
    return tuple(clients)


def parse_client_table(entry: dict[str, Any], settings: Mapping[str, Any],
                       problems: Problems) -> ClientConfig | None:
    """One client's table checked by the rules of ``[[clients]]``, without its secret: how a
    client managed through the admin API is validated (its secrets are kept as hashes in the
    database, bridge.clients). None when ``problems`` got any."""
    return _parse_client(problems, entry, None, settings)


def _parse_client(problems: Problems, entry: dict[str, Any], env: Mapping[str, str] | None,
                  settings: Mapping[str, Any]) -> ClientConfig | None:
    before = len(problems)
    for key in sorted(set(entry) - CLIENT_KEYS):
        problems.at(key).add("unknown client setting")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        problems.at("client_id").add("required, letters, digits, '.', '_' or '-'")
        return None
    where = Problems("clients", problems.found).at(f"[{client_id}]")
    uris = entry.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        where.at("redirect_uris").add("a non-empty list of absolute URLs is required")
        uris = []
    for uri in uris:
        _check_url(where.at("redirect_uris"), uri)
    login_start_uri = entry.get("login_start_uri")
    if login_start_uri is not None:
        if not isinstance(login_start_uri, str):
            where.at("login_start_uri").add("must be a URL")
            login_start_uri = None
        else:
            _check_url(where.at("login_start_uri"), login_start_uri)
    audience = entry.get("audience")
    if not isinstance(audience, str) or not audience:
        where.at("audience").add("required (the `aud` the client's APIs check)")
    elif len(audience) > MAX_URL_LENGTH or not audience.isprintable():
        # It goes into every token the client gets: bounded, and no control characters.
        where.at("audience").add(f"at most {MAX_URL_LENGTH} printable characters")
    version = entry.get("claims_version", 1)
    # true == 1 and 1.0 == 1 in Python: only an integer is a version.
    if isinstance(version, bool) or not isinstance(version, int) or version not in CLAIMS_VERSIONS:
        where.at("claims_version").add(f"must be one of {list(CLAIMS_VERSIONS)}")
    public = entry.get("public", True)
    if not isinstance(public, bool):
        where.at("public").add("must be true or false")
    delivery = entry.get("refresh_token_delivery", "body")
    if delivery not in ("body", "cookie"):
        where.at("refresh_token_delivery").add("must be \"body\" or \"cookie\"")
    scopes = entry.get("scopes", list(ClientConfig.scopes))
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        where.at("scopes").add("must be a list of strings")
        scopes = []
    policy: dict[str, int] = {}
    declared = specs(ClientConfig)
    for key in _POLICY:
        field_, spec = declared[key]
        assert spec.between is not None
        low, high = spec.between
        number = sources.as_int(entry.get(key, settings.get(key, field_.default)))
        if number is None or not low <= number <= high:
            where.at(key).add(f"must be an integer from {low} to {high}")
        else:
            policy[key] = number
    alg = entry.get("token_signing_alg", settings.get("token_signing_alg", "ES256"))
    if alg not in TOKEN_ALGORITHMS:
        where.at("token_signing_alg").add(f"must be one of {', '.join(TOKEN_ALGORITHMS)}")
    origins = entry.get("allowed_origins")
    if origins is None:
        origins = sorted({origin_of(u) for u in uris if origin_of(u)})
    elif not isinstance(origins, list) or not all(
            isinstance(o, str) and origin_of(o) == o for o in origins):
        where.at("allowed_origins").add("a list of origins like \"https://app.example.com\" "
                                        "(scheme, host and port; no path, never \"*\")")
        origins = []
    exchange = entry.get("token_exchange_audiences", [])
    if not isinstance(exchange, list) or not all(
            isinstance(a, str) and a and len(a) <= MAX_URL_LENGTH and a.isprintable()
            for a in exchange):
        where.at("token_exchange_audiences").add("must be a list of audiences")
        exchange = []
    saml_bearer = entry.get("allow_saml_bearer", False)
    if not isinstance(saml_bearer, bool) or (saml_bearer and public is not False):
        where.at("allow_saml_bearer").add("true or false, and only for confidential clients")
        saml_bearer = False
    if exchange and public is not False:
        where.at("token_exchange_audiences").add("only confidential clients may exchange tokens")
    dpop = entry.get("dpop", "off")
    if dpop not in DPOP_MODES:
        where.at("dpop").add("must be \"off\", \"allowed\" or \"required\"")
    elif dpop != "off" and version in CLAIMS_VERSIONS and version < DPOP_CLAIMS_VERSION:
        # The published schemas of versions 1 and 2 allow no cnf claim: a bound token would
        # break the contract its APIs validate against.
        where.at("dpop").add(f"needs claims_version = {DPOP_CLAIMS_VERSION} (the first whose "
                             "schema holds the cnf claim of bound tokens)")
    secret = None
    if env is not None:  # a file client: its secret comes from the environment
        secret_var = client_secret_variable(client_id)
        secret = sources.read_secret(env, secret_var, problems)
        if public is False and not secret:
            where.add(f"a confidential client needs a secret in {secret_var} or "
                      f"{secret_var}_FILE")
        elif secret and secret_bits(secret) < MIN_SECRET_BITS:
            # Client secrets are checked online by /token, /revoke, /logout and /introspect:
            # only one too large to search makes the per-address rate limits beside the point.
            Problems(secret_var, problems.found).add(
                f"the secret of client {client_id!r} is too weak (about "
                f"{int(secret_bits(secret))} random bits; at least {MIN_SECRET_BITS}, i.e. 32 "
                f"random bytes, are required); create one with `{NEW_SECRET_COMMAND}` and set "
                f"it in {secret_var} or {secret_var}_FILE")
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
        dpop=str(dpop),
        **policy,
    )


def _check_url(problems: Problems, uri: str) -> None:
    parts = split_url(uri)
    if len(uri) > MAX_URL_LENGTH:
        problems.add(f"{uri[:64]!r}... is longer than {MAX_URL_LENGTH} characters")
    elif parts is None:
        problems.add(f"{uri[:200]!r} is not a valid URL (a bracket left open, or a port that is "
                     "not a number from 1 to 65535)")
    elif not plain(uri):
        problems.add(f"{uri!r} contains a space, a control character or a non-ASCII character "
                     "(percent-encode them)")
    elif parts.scheme not in ("http", "https") or not parts.netloc or "#" in uri:
        problems.add(f"{uri!r} must be an absolute URL without fragment")
    elif "*" in uri:
        # Redirect URIs are compared exactly: a "*" would match only itself, never a pattern.
        problems.add(f"{uri!r} must not contain a wildcard: list every URL exactly")
    elif parts.username is not None or parts.password is not None:
        problems.add(f"{uri!r} must not contain a user name or password")
    elif parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        problems.add(f"{uri!r} must use https (http only for loopback)")


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
