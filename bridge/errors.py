"""The bridge's one small error tree.

Every refusal is a ``BridgeError`` carrying a *stable code* (documented in ``docs/errors.md``) and a
``public_detail`` that is safe to show a client. ``log_detail`` holds what only an operator should
see (observed vs expected values). Translation to HTTP happens in exactly one place:
``bridge.web.errors``. Nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    """Base of every expected refusal."""

    default_code = "error"

    def __init__(
        self,
        code: str | None = None,
        public_detail: str = "",
        *,
        log_detail: dict[str, Any] | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.public_detail = public_detail
        self.log_detail = log_detail or {}
        super().__init__(f"{self.code}: {public_detail}")


class ConfigError(BridgeError):
    """Configuration (settings, IdP metadata, mapping) is invalid; start-up stops. Through the
    admin API it is a refused change: ``code`` names the kind when one is more precise than
    ``config_invalid``."""

    default_code = "config_invalid"

    def __init__(self, problems: list[str] | str, *, code: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(code or "config_invalid", "; ".join(self.problems))

    def __str__(self) -> str:
        return "invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)


class Conflict(ConfigError):
    """A change that cannot be made in the current state (a slug declared as a file, an entity ID
    another IdP holds): 409 through the admin API."""


class SamlRejected(BridgeError):
    """A SAML message was refused. Nothing may be issued for it."""

    default_code = "saml_invalid"


class AuthorizeError(BridgeError):
    """An authorization request is invalid.

    ``redirectable`` is true only once client_id and redirect_uri have been verified: only then may
    the error travel back to the client (RFC 6749 §4.1.2.1); otherwise it is shown to the user.
    """

    default_code = "invalid_request"

    def __init__(
        self,
        code: str,
        public_detail: str = "",
        *,
        oauth_error: str = "invalid_request",
        redirectable: bool = False,
        log_detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code, public_detail, log_detail=log_detail)
        self.oauth_error = oauth_error
        self.redirectable = redirectable


class TokenError(BridgeError):
    """A token endpoint request is refused; ``oauth_error`` is the RFC 6749 §5.2 error."""

    default_code = "invalid_grant"

    def __init__(
        self,
        oauth_error: str,
        public_detail: str = "",
        *,
        code: str | None = None,
        log_detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code or oauth_error, public_detail, log_detail=log_detail)
        self.oauth_error = oauth_error


class NotFound(BridgeError):
    default_code = "not_found"


class InvalidValue(BridgeError):
    """A value sent with a request that no store can hold (a NUL character: PostgreSQL refuses
    it in text, SQLite would keep it): refused with 400 before it reaches the database, on
    both, wherever a check closer to the request did not name it first."""

    default_code = "value_invalid"


class StoreUnavailable(BridgeError):
    """The database cannot be reached; callers answer 503 and retry later."""

    default_code = "temporarily_unavailable"
