"""The bridge's two cookies, and why each has the attributes it has.

* The *login* cookie binds an outstanding SAML request to the browser that started it. The IdP
  returns the browser with a cross-site POST, so on https it is ``SameSite=None; Secure`` (and
  ``__Host-``: this host only, ``Path=/``). It grants nothing by itself.
* The *refresh* cookie carries a browser client's refresh token, out of reach of JavaScript:
  ``HttpOnly; Secure; SameSite=Strict`` with the ``__Host-`` prefix (no Domain, ``Path=/``).
  One per client (``__Host-bridge-refresh-<client_id>``): a browser signed in to two SPAs holds
  two logins, and one SPA's login never overwrites the other's. Refreshes that rely on it must
  also send ``X-Bridge-Refresh: 1``, a header a cross-site form cannot set.

On plain-http loopback development (``base_url`` http://127.0.0.1...) browsers refuse ``Secure``
and the prefixes, so the same cookies go without them; production insists on https.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from bridge.config import ClientConfig, Settings

LOGIN_COOKIE = "bridge-login"
REFRESH_COOKIE = "bridge-refresh"
REFRESH_HEADER = "X-Bridge-Refresh"


def _secure(settings: Settings) -> bool:
    return settings.base_url.startswith("https://")


def secure_prefix(settings: Settings) -> str:
    """``__Host-`` on https (this host only, Path=/); nothing on plain-http loopback."""
    return "__Host-" if _secure(settings) else ""


def login_cookie_name(settings: Settings) -> str:
    return secure_prefix(settings) + LOGIN_COOKIE


def refresh_cookie_name(settings: Settings, client: ClientConfig) -> str:
    """The client's own refresh cookie. Client IDs are cookie-name tokens (letters, digits, '.',
    '_', '-'; see CLIENT_ID_RE), so the name needs no encoding."""
    return f"{secure_prefix(settings)}{REFRESH_COOKIE}-{client.client_id}"


def legacy_refresh_cookie_name(settings: Settings) -> str:
    """The one name every cookie client shared before each had its own; still read (and then
    cleared) so that logins made before the change keep refreshing until they end."""
    return secure_prefix(settings) + REFRESH_COOKIE


def set_admin_cookie(response: Response, settings: Settings, name: str, value: str, *,
                     max_age: int) -> None:
    # Lax, not Strict: the sign-in ends in a redirect chain that began with the IdP's cross-site
    # POST, and Strict would withhold the new cookie from its last step. Changes need the CSRF
    # token as well, so Lax's top-level GETs can only read pages.
    response.set_cookie(name, value, max_age=max_age, path="/", secure=_secure(settings),
                        httponly=True, samesite="Lax")


def set_login_cookie(response: Response, settings: Settings, value: str) -> None:
    secure = _secure(settings)
    response.set_cookie(
        login_cookie_name(settings), value,
        max_age=settings.authn_request_ttl_seconds, path="/", secure=secure, httponly=True,
        samesite="None" if secure else "Lax",
    )


def set_refresh_cookie(response: Response, settings: Settings, client: ClientConfig, value: str,
                       *, max_age: int) -> None:
    response.set_cookie(
        refresh_cookie_name(settings, client), value,
        max_age=max_age, path="/", secure=_secure(settings), httponly=True, samesite="Strict",
    )


def clear_refresh_cookie(response: Response, settings: Settings, client: ClientConfig) -> None:
    response.delete_cookie(refresh_cookie_name(settings, client), path="/",
                           secure=_secure(settings), httponly=True, samesite="Strict")


def clear_legacy_refresh_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(legacy_refresh_cookie_name(settings), path="/",
                           secure=_secure(settings), httponly=True, samesite="Strict")
