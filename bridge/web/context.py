"""Access to the application's ``Bridge`` from request handlers."""

from __future__ import annotations

from flask import current_app

from bridge.federation import Bridge


def bridge() -> Bridge:
    return current_app.extensions["bridge"]
