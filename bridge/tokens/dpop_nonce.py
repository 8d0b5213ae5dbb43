"""Server nonces for DPoP proofs (RFC 9449 §8): a proof must carry a nonce we handed out lately, so
that proofs made ahead of time (by script that ran once in the page) expire with the nonce.

A nonce is not stored: it is the number of its time window with a MAC over it, under a key every
node derives from the key-encryption key. Any node recognizes any node's nonce, and nonces rotate
by themselves when the window turns; the one of the window before stays good, so that a client
holding it when the window turns is not refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from bridge.tokens.dpop import b64url


@dataclass(frozen=True)
class DpopNonces:
    key: bytes
    lifetime_seconds: int

    def _window(self, now: float) -> int:
        return int(now // self.lifetime_seconds)

    def _mac(self, window: int) -> str:
        return b64url(hmac.new(self.key, f"dpop-nonce:{window}".encode(), hashlib.sha256)
                      .digest()[:18])

    def current(self, now: float) -> str:
        window = self._window(now)
        return f"{window}.{self._mac(window)}"

    def accepts(self, nonce: str | None, now: float) -> bool:
        """Was ``nonce`` handed out in this window or the one before?"""
        if not nonce:
            return False
        text, dot, mac = nonce.partition(".")
        # ASCII only: str.isdigit() and int() take other scripts' digits, and compare_digest
        # refuses (raises on) non-ASCII text.
        if not dot or not (text.isascii() and text.isdigit()) or len(text) > 20 \
                or not mac.isascii():
            return False
        window = int(text)
        if window not in (self._window(now), self._window(now) - 1):
            return False
        return hmac.compare_digest(mac, self._mac(window))
