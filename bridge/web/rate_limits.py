"""Rate limits on the endpoints an attacker can hammer: /authorize and the ACS per address, /token
per client and per address. Counted in Redis when configured, so every node shares the budget.
Over the limit: 429 with Retry-After, and the usual error body with code ``rate_limited``."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from bridge.config import Settings


def _client_id() -> str:
    auth = request.authorization
    if auth is not None and auth.username:
        return "client:" + auth.username[:64]
    return "client:" + (request.form.get("client_id") or request.args.get("client_id") or "-")[:64]


def install(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=settings.rate_limit_storage_url,
        headers_enabled=True,
        strategy="fixed-window",
        key_prefix="bridge",
        # If Redis is down, serve rather than fail every login; the limits come back with it.
        swallow_errors=True,
    )
    views: dict[str, Any] = app.view_functions
    views["oauth.authorize"] = limiter.limit(settings.rate_limit_authorize)(views["oauth.authorize"])
    views["sso.acs"] = limiter.limit(settings.rate_limit_acs)(views["sso.acs"])
    token = limiter.limit(settings.rate_limit_token_per_address)(views["oauth.token"])
    views["oauth.token"] = limiter.limit(settings.rate_limit_token_per_client,
                                         key_func=_client_id)(token)
    return limiter
