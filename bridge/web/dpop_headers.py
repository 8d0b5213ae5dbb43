"""The HTTP side of DPoP (RFC 9449): the header a proof comes in, the header a nonce goes out in
(§8), and the challenge of a protected resource (§7.1)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from bridge.tokens.dpop import ALGORITHMS

DPOP_HEADER = "DPoP"
NONCE_HEADER = "DPoP-Nonce"


def add_dpop_nonce(response: Response, nonce: str | None) -> None:
    if nonce is not None:
        response.headers[NONCE_HEADER] = nonce


def dpop_challenge(error: str) -> str:
    """``WWW-Authenticate`` of a resource that takes DPoP-bound tokens (§7.1)."""
    return f'DPoP error="{error}", algs="{" ".join(ALGORITHMS)}"'
