"""The HTTP side of DPoP (RFC 9449): the header a proof comes in, the header a nonce goes out in
(§8), and the challenge of a protected resource (§7.1)."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from bridge.tokens.dpop import ALGORITHMS

DPOP_HEADER = "DPoP"
NONCE_HEADER = "DPoP-Nonce"
_DPOP_ENVIRON_KEY = "HTTP_DPOP"


def dpop_proofs() -> list[str]:
    """The request's DPoP header values, as ``request.headers.getlist(DPOP_HEADER)`` gives them.
    In the WSGI environ a header has one key (the server joins repeats into one value, which is
    then no proof), so one lookup there does what getlist does by scanning every header, at each
    refresh."""
    value = request.environ.get(_DPOP_ENVIRON_KEY)
    return [] if value is None else [value]


def add_dpop_nonce(response: Response, nonce: str | None) -> None:
    if nonce is not None:
        response.headers[NONCE_HEADER] = nonce


def dpop_challenge(error: str) -> str:
    """``WWW-Authenticate`` of a resource that takes DPoP-bound tokens (§7.1)."""
    return f'DPoP error="{error}", algs="{" ".join(ALGORITHMS)}"'
