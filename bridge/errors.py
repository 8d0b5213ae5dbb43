"""The bridge's one small error tree.

Every refusal is a ``BridgeError`` carrying a *stable code* (documented in ``docs/errors.md``) and a
``public_detail`` that is safe to show a client. ``log_detail`` holds what only an operator should
see (observed vs expected values). The type says what happened; ``bridge.web.errors`` turns each
type into an HTTP status in one table. Nothing here knows about HTTP.

    BridgeError
    ├── ConfigError            configuration found invalid (a list of located problems)
    │   ├── Misconfigured      the bridge's own configuration cannot serve what was asked
    │   ├── InvalidInput       an admin request that is not a valid change
    │   ├── FetchRefused       a metadata URL refused, or its fetch failed
    │   └── Conflict           a change the current state does not allow
    │       └── StaleChange    a change made from a state that is no longer current
    ├── SamlRejected           a SAML message refused
    │   ├── IdpUnknown         no IdP at this address
    │   ├── TooLarge           a message or body over the size limit
    │   ├── LoginUnmet         a login that is not what the client asked for
    │   └── Deprovisioned      a login of a person the IdP has deactivated
    ├── ProvisioningError      a SCIM request refused
    │   ├── ProvisioningUnauthorized  no valid SCIM token for this IdP
    │   └── ProvisioningConflict      a userName the IdP already uses
    ├── SecurityEventRejected  a Security Event Token refused
    ├── AuthorizeError         an authorization request refused (RFC 6749 §4.1.2.1)
    ├── TokenError             a token endpoint request refused (RFC 6749 §5.2)
    │   └── DpopError          a DPoP proof refused, a nonce asked for (RFC 9449)
    ├── AdminUnauthorized      no admin credentials
    ├── AdminForbidden         admin credentials without the session's CSRF token
    ├── NotFound
    ├── InvalidValue           a value no store can hold
    └── StoreUnavailable       the database cannot be reached
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
    """Configuration (settings, an IdP's metadata or settings, a mapping) is invalid, each problem
    named with its location. At start-up it stops the bridge; through the admin API it is a
    refused change, and ``code`` names the kind when one is more precise than ``config_invalid``.
    The shared validators raise it wherever the document came from."""

    default_code = "config_invalid"

    def __init__(self, problems: list[str] | str, *, code: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(code or self.default_code, "; ".join(self.problems))

    def __str__(self) -> str:
        return "invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)


class Misconfigured(ConfigError):
    """The bridge's own configuration or state cannot serve what was asked (no active signing
    key, keys the key-encryption key cannot decrypt, an unreachable or unmigrated database):
    start-up stops, and a request that needs it is answered "unavailable"."""


class InvalidInput(ConfigError):
    """An admin request that is not a valid change (a body that is no JSON object, a name or
    lifetime out of range); nothing was changed."""


class FetchRefused(ConfigError):
    """A metadata URL was refused (not https, a private address) or fetching it failed; every
    problem starts with ``metadata_url:``."""


class Conflict(ConfigError):
    """A change that cannot be made in the current state (a slug declared as a file, an entity ID
    another IdP holds, a version that is no longer pending)."""


class StaleChange(Conflict):
    """A change that names the state it was made from (a page's settings fingerprint, an API
    request's ``If-Match``) when another change has been made since; nothing is saved."""


class SamlRejected(BridgeError):
    """A SAML message was refused. Nothing may be issued for it."""

    default_code = "saml_invalid"


class IdpUnknown(SamlRejected):
    """No IdP is configured under the slug a request names."""

    default_code = "idp_unknown"


class TooLarge(SamlRejected):
    """A SAML message, or any request body, over the size this bridge accepts; refused before
    it is parsed."""

    default_code = "saml_too_large"


class LoginUnmet(SamlRejected):
    """A login the IdP answered that does not meet what the client asked of it (``acr_values``,
    ``max_age``, ``prompt``), or that no login can be (an AuthnInstant in the future). Nothing is
    issued; the client is told through its redirect URI, with ``oauth_error``
    (``unmet_authentication_requirements``, ``login_required`` or ``access_denied``)."""

    default_code = "authn_requirement_unmet"

    def __init__(self, code: str, public_detail: str = "", *,
                 oauth_error: str = "unmet_authentication_requirements",
                 log_detail: dict[str, Any] | None = None) -> None:
        super().__init__(code, public_detail, log_detail=log_detail)
        self.oauth_error = oauth_error
class Deprovisioned(SamlRejected):
    """A verified login of a person the IdP has deactivated or deleted (SCIM) or disabled (a
    security event): nothing is issued until the IdP reactivates them."""

    default_code = "login_deprovisioned"


class ProvisioningError(BridgeError):
    """A SCIM request refused; ``scim_type`` is the RFC 7644 §3.12 error type, where one fits.
    Nothing was changed."""

    default_code = "scim_invalid"

    def __init__(self, code: str | None = None, public_detail: str = "", *,
                 scim_type: str | None = None, log_detail: dict[str, Any] | None = None) -> None:
        super().__init__(code, public_detail, log_detail=log_detail)
        self.scim_type = scim_type


class ProvisioningUnauthorized(ProvisioningError):
    """No SCIM bearer token, or one that is not this IdP's token in force."""

    default_code = "scim_unauthorized"


class ProvisioningConflict(ProvisioningError):
    """A user with this userName already exists at this IdP (RFC 7644 §3.3: 409, uniqueness)."""

    default_code = "scim_conflict"


class SecurityEventRejected(BridgeError):
    """A pushed Security Event Token refused (RFC 8935 §2.3); ``set_error`` is the RFC 8935
    error code the transmitter is answered with. Nothing was changed."""

    default_code = "set_invalid"

    def __init__(self, code: str, public_detail: str = "", *, set_error: str = "invalid_request",
                 log_detail: dict[str, Any] | None = None) -> None:
        super().__init__(code, public_detail, log_detail=log_detail)
        self.set_error = set_error


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


class GrantOfDeprovisionedPerson(TokenError):
    """An authorization code or refresh token of a person the IdP has deactivated since the
    login (a login that completed while the deprovisioning ran): nothing is issued for it."""

    def __init__(self, idp_slug: str) -> None:
        super().__init__("invalid_grant", "The identity provider has deactivated this person.",
                         code="login_deprovisioned", log_detail={"idp": idp_slug})


class DpopError(TokenError):
    """A DPoP proof (RFC 9449) is missing, invalid or replayed (``invalid_dpop_proof``), it
    lacks the server nonce it must carry (``use_dpop_nonce``, §8), or a resource got a DPoP-bound
    token without a proof of its key (``invalid_token``, §7.1). ``nonce`` is the fresh nonce the
    client should use next; the web layer sends it as the ``DPoP-Nonce`` header."""

    default_code = "invalid_dpop_proof"

    def __init__(
        self,
        oauth_error: str,
        public_detail: str = "",
        *,
        code: str | None = None,
        nonce: str | None = None,
        log_detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(oauth_error, public_detail, code=code, log_detail=log_detail)
        self.nonce = nonce


class AdminUnauthorized(BridgeError):
    """No admin API token and no admin session (or an expired or revoked one)."""

    default_code = "admin_unauthorized"


class AdminForbidden(BridgeError):
    """A change through an admin session without the session's CSRF token."""

    default_code = "admin_csrf_invalid"


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
