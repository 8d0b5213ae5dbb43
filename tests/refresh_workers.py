"""Worker processes for the refresh concurrency tests (importable by multiprocessing's spawn)."""

from __future__ import annotations

import time
import warnings
from typing import Any

from bridge.clock import SystemClock
from bridge.config import Settings
from bridge.errors import TokenError
from bridge.oauth.grants.refresh_token import RefreshTokenGrant


def _bridge(settings: Settings) -> Any:
    warnings.simplefilter("ignore")
    from bridge.services import build_services

    return build_services(settings, SystemClock())


def refresh_once(settings: Settings, client_id: str, token: str, start_at: float) -> tuple[str, str]:
    """Refresh ``token`` once, starting at ``start_at``; return ("ok", successor) or ("error", code)."""
    bridge = _bridge(settings)
    client = settings.client(client_id)
    assert client is not None
    bridge.keys.signing_key(client.token_signing_alg)  # warm up outside the race
    time.sleep(max(0.0, start_at - time.time()))
    try:
        tokens = RefreshTokenGrant(bridge).issue(client, {"refresh_token": token})
        return "ok", str(tokens.refresh_token)
    except TokenError as error:
        return "error", error.code
    finally:
        bridge.db.dispose()


def refresh_chain(settings: Settings, client_id: str, token: str, until: float
                  ) -> list[tuple[float, bool]]:
    """Keep refreshing (following successors) until ``until``; record (start time, success)."""
    bridge = _bridge(settings)
    client = settings.client(client_id)
    assert client is not None
    attempts: list[tuple[float, bool]] = []
    while time.time() < until:
        started = time.time()
        try:
            token = str(RefreshTokenGrant(bridge).issue(client, {"refresh_token": token}).refresh_token)
            attempts.append((started, True))
        except TokenError:
            attempts.append((started, False))
            time.sleep(0.005)
    bridge.db.dispose()
    return attempts
