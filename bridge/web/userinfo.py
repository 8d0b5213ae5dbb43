"""OpenID Connect UserInfo (OIDC Core §5.3): the claims of the client's version for a valid access
token, uncut by the token's group budget (where an overage claim points)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bridge.errors import TokenError
from bridge.web.context import application

userinfo = Blueprint("userinfo", __name__)


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.method == "POST" and request.form.get("access_token"):
        return request.form["access_token"]  # RFC 6750 §2.2
    raise TokenError("invalid_token", "A bearer access token is required.", code="token_invalid")


@userinfo.route("/userinfo", methods=["GET", "POST"])
def endpoint() -> Response:
    response = jsonify(application().userinfo.userinfo(_bearer()))
    response.headers["Cache-Control"] = "no-store"
    return response
