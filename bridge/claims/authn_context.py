"""From a SAML AuthnContextClassRef to OIDC ``acr`` and RFC 8176 ``amr`` values.

Well-known classes get short names (tokens stay small, APIs compare simple strings); any other
class reference is passed through as the IdP sent it, with no ``amr``.
"""

from __future__ import annotations

_AC = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
_KNOWN: dict[str, tuple[str, tuple[str, ...]]] = {
    _AC + "Password": ("pwd", ("pwd",)),
    _AC + "PasswordProtectedTransport": ("pwd", ("pwd",)),
    _AC + "X509": ("x509", ("hwk",)),
    _AC + "TLSClient": ("x509", ("hwk",)),
    _AC + "Smartcard": ("smartcard", ("sc", "hwk")),
    _AC + "SmartcardPKI": ("smartcard", ("sc", "hwk")),
    _AC + "Kerberos": ("kerberos", ("kba",)),
    _AC + "MobileTwoFactorContract": ("mfa", ("mfa",)),
    _AC + "TimeSyncToken": ("otp", ("otp",)),
    _AC + "unspecified": ("unspecified", ()),
    "urn:federation:authentication:windows": ("windows", ("pwd",)),
    "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/windows":
        ("windows", ("pwd",)),
    "http://schemas.microsoft.com/claims/multipleauthn": ("mfa", ("mfa",)),
    "https://refeds.org/profile/mfa": ("mfa", ("mfa",)),
    "https://refeds.org/profile/sfa": ("pwd", ("pwd",)),
}


def acr_amr(class_ref: str | None) -> tuple[str | None, tuple[str, ...]]:
    if not class_ref:
        return None, ()
    known = _KNOWN.get(class_ref)
    if known is None:
        return class_ref, ()
    return known
