"""Rate limits on the endpoints an attacker can hammer: /authorize and the ACS per address, /token
per address and per client. Counted in Redis when configured, so every node shares the budget.
Over the limit: 429 with Retry-After, and the usual error body with code ``rate_limited``.

The limits are checked inside the limited views only (with the ``limits`` library directly), so
other endpoints such as /healthz pay nothing for them."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from bridge.config import Settings

log = logging.getLogger("bridge.rate_limits")
KEY_PREFIX = "bridge"
# A Redis that stops answering must not hold requests: give up quickly and serve uncounted.
REDIS_TIMEOUT_SECONDS = 0.5


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        url = settings.rate_limit_storage_url
        options: dict[str, Any] = {}
        if url.startswith(("redis://", "rediss://")):
            options = {"socket_timeout": REDIS_TIMEOUT_SECONDS,
                       "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
        self._limiter = FixedWindowRateLimiter(storage_from_string(url, **options))

    def check(self, limit: RateLimitItem, scope: str, key: str) -> None:
        """Count one request against ``limit`` for ``key``; TooManyRequests when over it."""
        try:
            allowed = self._limiter.hit(limit, KEY_PREFIX, scope, key)
            if allowed:
                return
            reset = self._limiter.get_window_stats(limit, KEY_PREFIX, scope, key).reset_time
        except Exception as error:  # noqa: BLE001 - any storage failure, whatever the backend
            # If Redis is down, serve rather than fail every login; the limits come back with it.
            log.warning("rate limit storage unavailable, request not counted: %s",
                        type(error).__name__)
            return
        raise TooManyRequests(retry_after=max(1, math.ceil(reset - time.time())))


def _address() -> str:
    # ProxyFix (trusted_proxy_hops) has already put the client's address here.
    return request.remote_addr or "-"


def _client_id() -> str:
    auth = request.authorization
    if auth is not None and auth.username:
        return auth.username[:64]
    return (request.form.get("client_id") or request.args.get("client_id") or "-")[:64]


def install(app: Flask, settings: Settings) -> RateLimits:
    limits = RateLimits(settings)

    def limited(endpoint: str, *rules: tuple[str, str, Callable[[], str]]) -> None:
        items = [(parse(text), scope, key) for text, scope, key in rules]
        view = app.view_functions[endpoint]

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for item, scope, key in items:
                limits.check(item, scope, key())
            return view(*args, **kwargs)

        app.view_functions[endpoint] = checked

    limited("oauth.authorize", (settings.rate_limit_authorize, "authorize", _address))
    limited("sso.acs", (settings.rate_limit_acs, "acs", _address))
    limited("oauth.token", (settings.rate_limit_token_per_address, "token-address", _address),
            (settings.rate_limit_token_per_client, "token-client", _client_id))
    return limits
