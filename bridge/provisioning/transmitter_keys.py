"""The keys a SET transmitter signs with: written in the IdP's settings (``jwks``) or fetched
from its ``jwks_url`` by the metadata fetcher, with its SSRF rules (https only, public
addresses, no redirects, a byte limit and a deadline). Fetched keys are kept for a while; a key
ID not among them fetches again, at most once a minute, so a flood of made-up key IDs cannot
make us fetch in a loop. Keys in the token itself (``jwk``, ``jku``, ``x5u``) are never used.

While the URL fails, the keys of the last good fetch keep verifying, but for at most
``MAX_STALE_SECONDS`` after it: a transmitter withdraws a key from its JWKS because it is
compromised, and whoever holds that key may also be the one keeping the URL from answering.
A good fetch replaces the keys at once: a key it no longer lists verifies nothing from then on."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import jwt

from bridge.clock import Clock
from bridge.errors import FetchRefused, SecurityEventRejected
from bridge.idps.event_settings import SecurityEventSettings
from bridge.idps.fetch import FetchPolicy, fetch_metadata

KEEP_SECONDS = 3600
REFETCH_SECONDS = 60
# How long after the last good fetch its keys still verify while the URL fails: a day rides out
# a transmitter's outage (its SETs are refused after that, set_keys_unavailable, and it retries
# them) and is as long as a SET may be old (security_events.MAX_AGE_SECONDS).
MAX_STALE_SECONDS = 24 * 3600


@dataclass
class _Fetched:
    url: str
    keys: list[dict[str, Any]]
    at: float


class TransmitterKeys:
    def __init__(self, clock: Clock, policy: FetchPolicy) -> None:
        self.clock, self.policy = clock, policy
        self._fetched: dict[str, _Fetched] = {}
        self._tried: dict[str, tuple[str, float]] = {}  # the last fetch of each IdP's URL
        self._lock = threading.Lock()

    def key_for(self, slug: str, config: SecurityEventSettings, kid: object, alg: str) -> Any:
        """The public key to verify a SET with ``kid`` (and ``alg``); ``SecurityEventRejected``
        when the transmitter has none such."""
        if config.jwks is not None:
            found = _pick(json.loads(config.jwks)["keys"], kid, alg)
        else:
            assert config.jwks_url is not None
            found = _pick(self._keys(slug, config.jwks_url, refresh=False), kid, alg)
            if found is None:
                found = _pick(self._keys(slug, config.jwks_url, refresh=True), kid, alg)
        if found is None:
            raise SecurityEventRejected("set_signature_invalid",
                                        "No key of the transmitter matches the SET's key ID.",
                                        set_error="invalid_key",
                                        log_detail={"kid": str(kid)[:64]})
        try:
            return jwt.PyJWK(found, algorithm=alg).key
        except jwt.PyJWTError:
            raise SecurityEventRejected("set_signature_invalid",
                                        "The transmitter's key does not fit the SET's algorithm.",
                                        set_error="invalid_key") from None

    def _keys(self, slug: str, url: str, *, refresh: bool) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            held = self._fetched.get(slug)
            if held is not None and (held.url != url or now - held.at > MAX_STALE_SECONDS):
                held = None  # the settings name another URL now, or the keys are too old
            tried = self._tried.get(slug)
            recently = tried is not None and tried[0] == url and now - tried[1] < REFETCH_SECONDS
            if held is not None and ((now - held.at < KEEP_SECONDS and not refresh) or recently):
                return held.keys
            if recently:
                raise _unavailable(url, "fetched less than a minute ago, and failed")
            # Every fetch, good or bad, counts: SETs anyone can post never fetch more often.
            self._tried[slug] = (url, now)
        try:
            document = json.loads(fetch_metadata(url, policy=self.policy).body or b"")
            keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(keys, list):
                raise ValueError("the document is no JWKS")
        except (FetchRefused, ValueError) as error:
            if held is not None:
                return held.keys  # the keys we had still verify what they verified, for a while
            raise _unavailable(url, str(error)) from None
        listed = [key for key in keys if isinstance(key, dict)]
        with self._lock:
            latest = self._fetched.get(slug)
            if latest is not None and latest.url == url and latest.at > now:
                # A slower fetch started earlier never puts back keys a later one dropped.
                return latest.keys
            self._fetched[slug] = _Fetched(url, listed, now)
        return listed


def _unavailable(url: str, why: str) -> SecurityEventRejected:
    return SecurityEventRejected("set_keys_unavailable",
                                 "The transmitter's keys could not be fetched.",
                                 set_error="invalid_key",
                                 log_detail={"jwks_url": url, "error": why[:300]})


def _pick(keys: list[dict[str, Any]], kid: object, alg: str) -> dict[str, Any] | None:
    """The key named ``kid``; without a ``kid``, the one key there is. A key for another use
    (``enc``) or pinned to another ``alg`` does not count."""
    usable = [key for key in keys if key.get("use") in (None, "sig")
              and key.get("alg") in (None, alg) and "d" not in key]
    if kid is None:
        return usable[0] if len(usable) == 1 else None
    return next((key for key in usable if key.get("kid") == kid), None)
