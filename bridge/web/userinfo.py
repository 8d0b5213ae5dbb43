"""OpenID Connect UserInfo (OIDC Core §5.3): the claims of the client's version for a valid access
token, uncut by the token's group budget (where an overage claim points)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bridge.errors import TokenError
from bridge.web.context import application
from bridge.web.dpop_headers import add_dpop_nonce, dpop_proofs

userinfo = Blueprint("userinfo", __name__)


def _access_token() -> tuple[str, bool]:
    """The access token, and whether it came with the DPoP scheme (RFC 9449 §7.1)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "dpop") and token.strip():
        return token.strip(), scheme.lower() == "dpop"
    if request.method == "POST" and request.form.get("access_token"):
        return request.form["access_token"], False  # RFC 6750 §2.2
    raise TokenError("invalid_token", "A bearer access token is required.", code="token_invalid")


@userinfo.route("/userinfo", methods=["GET", "POST"])
def endpoint() -> Response:
    token, with_dpop = _access_token()
    proofs = dpop_proofs() if with_dpop else None
    response = jsonify(application().userinfo.userinfo(token, dpop_proofs=proofs,
                                                       method=request.method))
    response.headers["Cache-Control"] = "no-store"
    if with_dpop:
        add_dpop_nonce(response, application().dpop.fresh_nonce())
    return response
