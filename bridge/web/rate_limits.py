"""Rate limits on the endpoints an attacker can hammer. Counted in Redis when configured, so every
node shares the budget. Over the limit: 429 with Retry-After, and the usual error body with code
``rate_limited`` (``slow_down`` from the OAuth endpoints).

* Per address, before anything else: /authorize, the ACS and Single Logout, the admin sign-in,
  and every endpoint that checks a client secret (/token, /revoke and /logout share one budget;
  /introspect, which APIs call per request, has its own), so secrets cannot be guessed at speed.
* Per address, before the bearer token or the signature is checked: every SCIM request
  (``/scim/v2/<slug>``) and every Security Event Token pushed (``/events/<slug>``), each with a
  budget of its own that is generous for a mass offboarding.
* Per client at /token, counted only once the client is authenticated: a request that merely
  *names* a client must not spend its budget, or a few addresses could lock every user of an SPA
  out. A public client proves nothing, so its budget is per client *and* address.
* "Address": an IPv4 address, or an IPv6 address's /64, or the IPv4 address an IPv6 one
  carries (``counted_address``).

The limits are checked inside the limited views only (with the ``limits`` library directly), so
other endpoints such as /healthz pay nothing for them."""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from bridge.config import ClientConfig, Settings
from bridge.ip_forms import nat64_ipv4, nat64_networks

log = logging.getLogger("bridge.rate_limits")
KEY_PREFIX = "bridge"
UNPARSED_ADDRESS = "unparsed"
# A Redis that stops answering must not hold requests: give up quickly and serve uncounted.
REDIS_TIMEOUT_SECONDS = 0.5


class ProcessWindows(Storage):
    """Fixed-window counters in this process, for ``memory://``. The library's memory storage
    starts a timer thread to drop expired counters whenever its last one has finished, which on
    a quiet node is nearly every limited request (a thread's start cost more than the rest of
    the check); here an expired window is dropped when read, and all of them once a minute."""

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}  # key: (count, expires at)
        self._swept_at = time.time()

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now - self._swept_at > self.SWEEP_SECONDS:
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
                self._swept_at = now
            count, expires = self._windows.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + expiry
            self._windows[key] = (count + amount, expires)
            return count + amount

    def get(self, key: str) -> int:
        count, expires = self._windows.get(key, (0, 0.0))
        return count if expires > time.time() else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        expires = self._windows.get(key, (0, now))[1]
        return expires if expires > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._windows)
            self._windows = {}
        return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        url = settings.rate_limit_storage_url
        options: dict[str, Any] = {}
        if url.startswith(("redis://", "rediss://")):
            options = {"socket_timeout": REDIS_TIMEOUT_SECONDS,
                       "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
        storage = ProcessWindows() if url.startswith("memory://") else storage_from_string(url, **options)
        # A URL of an asyncio storage ("async+redis://") is refused by the settings.
        self._storage: Storage = storage  # type: ignore[assignment]
        self._limiter = FixedWindowRateLimiter(storage)
        self.token_per_client = rates(settings.rate_limit_token_per_client)

    def check(self, limit: RateLimitItem, scope: str, key: str) -> None:
        """Count one request against ``limit`` for ``key``; TooManyRequests when over it."""
        try:
            # What FixedWindowRateLimiter.hit does, with its key written out in one step: every
            # refresh makes two checks, and the library's key building (a list, a join and a
            # conversion per part) was most of each one's cost. The key is the library's, so
            # nodes running either code count in the same windows (tests/test_rate_limits.py).
            counted = self._storage.incr(
                f"{limit.namespace}/{KEY_PREFIX}/{scope}/{key}/{limit.amount}/{limit.multiples}/"
                f"{limit.GRANULARITY.name}", limit.get_expiry())
            if counted <= limit.amount:
                return
            reset = self._limiter.get_window_stats(limit, KEY_PREFIX, scope, key).reset_time
        except Exception as error:  # noqa: BLE001 - any storage failure, whatever the backend
            # If Redis is down, serve rather than fail every login; the limits come back with it.
            log.warning("rate limit storage unavailable, request not counted: %s",
                        type(error).__name__)
            return
        raise TooManyRequests(retry_after=max(1, math.ceil(reset - time.time())))


def rates(text: str) -> list[RateLimitItem]:
    """Every rate of a setting ("10/second;300/minute": both count, not only the first), each
    once: a rate written twice would share its window and count every request twice."""
    return list(dict.fromkeys(parse_many(text)))


def _address() -> str:
    # ProxyFix (trusted_proxy_hops) has already put the client's address here.
    return counted_address(request.remote_addr or "-",
                           current_app.extensions["bridge"].settings.nat64_prefixes)


@functools.lru_cache(maxsize=4096)  # a refresh asks twice; a sender's address repeats
def counted_address(address: str, nat64_prefixes: tuple[str, ...] = ()) -> str:
    """The address a per-address budget is counted for (docs/decisions/0034-rate-limits-per-ipv6-64.md):
    an IPv4 address itself; an IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64's
    well-known prefix or one of ``nat64_prefixes``, 6to4, Teredo) as that IPv4 address; any
    other IPv6 address by its /64,
    since one end site holds a /64 at least and counting each of its 2**64 addresses apart would
    give one sender a budget without end. A port or brackets that a proxy wrote around the
    address are left out (``198.51.100.7:1111``, ``[2001:db8::1]:443``), or every connection
    would count apart; what is still no address shares one budget."""
    text = address.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        parsed = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return UNPARSED_ADDRESS
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    embedded = (parsed.ipv4_mapped or parsed.sixtofour
                or nat64_ipv4(parsed, nat64_networks(nat64_prefixes))
                or (parsed.teredo[1] if parsed.teredo else None))
    if embedded is not None:
        return str(embedded)
    return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))


def count_client(client: ClientConfig) -> None:
    """Count a /token request against the client's budget; call it only after
    ``authenticate_client`` succeeded."""
    limits: RateLimits | None = current_app.extensions.get("limiter")
    if limits is None:
        return
    # Anyone can name a public client: its budget is per address as well, so strangers spend
    # their own. A confidential client's is its own, since only it holds the secret.
    key = f"{client.client_id} {_address()}" if client.public else client.client_id
    for limit in limits.token_per_client:
        limits.check(limit, "token-client", key)


def install(app: Flask, settings: Settings) -> RateLimits:
    limits = RateLimits(settings)

    def limited(endpoint: str, *rules: tuple[str, str, Callable[[], str]]) -> None:
        items = [(item, scope, key) for text, scope, key in rules for item in rates(text)]
        view = app.view_functions[endpoint]

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for item, scope, key in items:
                limits.check(item, scope, key())
            return view(*args, **kwargs)

        app.view_functions[endpoint] = checked

    limited("oauth.authorize", (settings.rate_limit_authorize, "authorize", _address))
    limited("sso.acs", (settings.rate_limit_acs, "acs", _address))
    # Single Logout is as unauthenticated as the ACS until its signature is checked, and every
    # refusal is an audit event: the same budget per address, counted apart.
    limited("sso.single_logout", (settings.rate_limit_acs, "slo", _address))
    # The page that posts our LogoutRequest builds and signs a message on every request.
    limited("sso.logout_form", (settings.rate_limit_acs, "slo", _address))
    # Each admin sign-in stores an outstanding SAML request (purged when it expires): the limit
    # bounds what one address can make the database hold.
    limited("admin_pages.login_at", (settings.rate_limit_admin_login, "admin-login", _address))
    # Every endpoint that checks a client secret. The per-client /token budget is counted in
    # the view, after authentication (count_client).
    for endpoint in ("oauth.token", "oauth.revoke", "oauth.logout"):
        limited(endpoint, (settings.rate_limit_token_per_address, "token-address", _address))
    limited("oauth.introspect",
            (settings.rate_limit_introspect_per_address, "introspect-address", _address))
    # The IdPs' provisioning channels, per address and before the bearer token or the SET's
    # signature is checked (a failed one costs as much as a good one, and each refusal is an
    # audit row): every SCIM request of every IdP, and every SET pushed.
    for endpoint in sorted(name for name in app.view_functions if name.startswith("scim.")):
        limited(endpoint, (settings.rate_limit_scim_per_address, "scim-address", _address))
    limited("security_events.receive",
            (settings.rate_limit_security_events_per_address, "events-address", _address))
    return limits
