"""The Security Event Token receiver of each IdP, ``POST /events/<slug>`` (RFC 8935 push
delivery): the body is one SET (``application/secevent+jwt``); 202 when it is accepted (acted on
or only recorded), 400 with ``{"err", "description"}`` when it is refused (bridge.web.errors)."""

from __future__ import annotations

from flask import Blueprint, request

from bridge.errors import SecurityEventRejected
from bridge.provisioning.security_events import MAX_SET_BYTES
from bridge.web.context import application

security_events = Blueprint("security_events", __name__, url_prefix="/events")


@security_events.post("/<slug>")
def receive(slug: str) -> tuple[str, int]:
    if request.mimetype != "application/secevent+jwt":
        raise SecurityEventRejected("set_invalid",
                                    "The body must be a SET (Content-Type: application/secevent+jwt).")
    body = request.get_data(cache=False)[:MAX_SET_BYTES + 1]
    try:
        token = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SecurityEventRejected("set_invalid", "The body is not a JWT.") from None
    application().security_events.receive(slug, token)
    return "", 202
