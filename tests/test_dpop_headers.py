"""The DPoP header as the views read it: one environ lookup, which must give what werkzeug's
scan of every header gives for any request a client can send."""

from __future__ import annotations

import pytest
from flask import Flask, request

from bridge.web.dpop_headers import DPOP_HEADER, dpop_proofs

PROOF = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"


@pytest.mark.parametrize("headers", [
    [],
    [("DPoP", PROOF)],
    [("dpop", PROOF)],
    [("DPOP", "")],
    [("DPoP", PROOF), ("DPoP", "second")],  # joined into one value, as a server does
    [("D-PoP", PROOF)],  # another header
    [("DPoP-Nonce", "n"), ("X-DPoP", PROOF)],
    [("Authorization", f"DPoP {PROOF}")],
])
def test_the_proofs_are_what_werkzeug_reads(headers: list[tuple[str, str]]) -> None:
    app = Flask(__name__)
    with app.test_request_context("/token", method="POST", headers=headers):
        assert dpop_proofs() == request.headers.getlist(DPOP_HEADER)
        if any(name.lower() == "dpop" for name, _ in headers):
            assert len(dpop_proofs()) == 1
