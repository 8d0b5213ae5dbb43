"""Access to what ``create_app`` built, from request handlers."""

from __future__ import annotations

from flask import current_app

from bridge.admin.services import Administration
from bridge.application import Application
from bridge.services import Services


def services() -> Services:
    return current_app.extensions["bridge"]


def application() -> Application:
    return current_app.extensions["application"]


def administration() -> Administration:
    return current_app.extensions["admin"]
