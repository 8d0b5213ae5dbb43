"""POST /register: RFC 7591 dynamic client registration, when ``registration_token`` is set."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bridge.clients.registration import check_initial_access_token, register
from bridge.errors import InvalidInput, NotFound, TokenError
from bridge.web.context import administration, services
from bridge.web.json_input import request_json

registration = Blueprint("registration", __name__)


@registration.post("/register")
def register_client() -> tuple[Response, int]:
    if services().settings.registration_token is None:
        raise NotFound("not_found", "Dynamic client registration is not enabled here.")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    check_initial_access_token(services(), value.strip() if scheme.lower() == "bearer" else None)
    try:
        body = request_json()
    except InvalidInput as refused:  # a string that is not Unicode text
        raise TokenError("invalid_client_metadata", "; ".join(refused.problems),
                         code="registration_metadata_invalid") from None
    if body is None:
        raise TokenError("invalid_client_metadata", "The body must be JSON client metadata.",
                         code="registration_metadata_invalid")
    response = jsonify(register(administration().clients, body))
    response.headers["Cache-Control"] = "no-store"  # it may hold the client's secret
    return response, 201
