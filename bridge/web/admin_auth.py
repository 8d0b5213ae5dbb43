"""Authentication for every admin route: an admin API token (``Authorization: Bearer bat_...``)
or an admin session cookie. Requests that change something with a session cookie must prove they
come from our own pages: the session's CSRF token in ``X-CSRF-Token`` or the form's ``csrf_token``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from bridge.admin.access import Admin
from bridge.errors import AdminForbidden, AdminUnauthorized
from bridge.tokens.secrets_util import constant_time_equal
from bridge.web.context import administration, services
from bridge.web.cookies import secure_prefix

F = TypeVar("F", bound=Callable[..., Any])
SESSION_COOKIE = "bridge-admin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def session_cookie_name() -> str:
    return secure_prefix(services().settings) + SESSION_COOKIE


def current_admin() -> Admin | None:
    if "admin" in g:
        return g.admin
    admin = None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        admin = administration().access.authenticate_token(value.strip())
    elif request.cookies.get(session_cookie_name()):
        admin = administration().access.authenticate_session(request.cookies[session_cookie_name()])
        if admin is not None and request.method not in SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
            if not admin.csrf_token or not constant_time_equal(sent, admin.csrf_token):
                raise AdminForbidden("admin_csrf_invalid", "The form's CSRF token is missing or "
                                     "wrong; reload the page.")
    g.admin = admin
    return admin


def admin_api(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_admin() is None:
            raise AdminUnauthorized("admin_unauthorized",
                                    "An admin API token or an admin session is required.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_page(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_admin() is None:
            target: BaseResponse = redirect(url_for("admin_pages.login", next=request.path))
            return target
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def actor() -> str:
    admin = current_admin()
    assert admin is not None
    return admin.actor


def owner() -> tuple[str, str] | None:
    """The person whose admin power this request is (IdP slug, subject); None for a token of
    the command line."""
    admin = current_admin()
    assert admin is not None
    return admin.owner
