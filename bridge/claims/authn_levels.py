"""Per IdP: our ``acr`` values and the IdP's SAML ``AuthnContextClassRef`` values, both ways.

An IdP's ``[authn_contexts]`` table lists levels, weakest first. Each level is one ``acr`` value
of ours (what clients ask for in ``acr_values`` and find in tokens) and the class references this
IdP uses for it (the first is the one requested; any of them counts when asserted):

    [authn_contexts]
    preset = "entra"                  # adfs | entra | okta | shibboleth | keycloak | google
    comparison = "minimum"            # exact | minimum (SAML Core §3.3.2.2.1)
    [[authn_contexts.levels]]
    acr = "mfa"
    class_refs = ["http://schemas.microsoft.com/claims/multipleauthn"]
    amr = ["mfa"]                     # RFC 8176 values for tokens (optional)

Levels given replace the preset's; ``comparison`` alone overrides the preset's comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bridge.claims.authn_context import acr_amr
from bridge.config.problems import Problems
from bridge.errors import ConfigError

_AC = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
PASSWORD_PROTECTED = _AC + "PasswordProtectedTransport"
MICROSOFT_MFA = "http://schemas.microsoft.com/claims/multipleauthn"
REFEDS_MFA = "https://refeds.org/profile/mfa"
REFEDS_SFA = "https://refeds.org/profile/sfa"
COMPARISONS = ("exact", "minimum")
# An acr value as OIDC carries it: no space (acr_values is space-separated), printable ASCII.
ACR_PATTERN = re.compile(r"^[\x21-\x7e]{1,64}\Z")
_MAX_CLASS_REF = 1024


@dataclass(frozen=True)
class AuthnLevel:
    acr: str
    class_refs: tuple[str, ...]
    amr: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthnContexts:
    """One IdP's levels, weakest first, and the comparison its AuthnRequests carry."""

    levels: tuple[AuthnLevel, ...] = ()
    comparison: str = "exact"
    preset: str | None = None

    @property
    def acr_values(self) -> tuple[str, ...]:
        return tuple(level.acr for level in self.levels)

    def rank_of_acr(self, acr: str) -> int | None:
        return next((i for i, level in enumerate(self.levels) if level.acr == acr), None)

    def rank_of_class_ref(self, class_ref: str | None) -> int | None:
        if not class_ref:
            return None
        return next((i for i, level in enumerate(self.levels) if class_ref in level.class_refs),
                    None)

    def requested_class_refs(self, acr_values: tuple[str, ...]) -> tuple[str, ...]:
        """The class references to ask the IdP for, in the client's order of preference."""
        refs: list[str] = []
        for acr in acr_values:
            rank = self.rank_of_acr(acr)
            if rank is not None:
                refs.extend(r for r in self.levels[rank].class_refs if r not in refs)
        return tuple(refs)

    def satisfies(self, class_ref: str | None, acr_values: tuple[str, ...]) -> bool:
        """Whether an asserted class reference meets a request for ``acr_values``: exactly one of
        them, or (comparison minimum) a level at least as strong as the weakest of them."""
        asserted = self.rank_of_class_ref(class_ref)
        if asserted is None:
            return False
        wanted = [rank for rank in (self.rank_of_acr(a) for a in acr_values) if rank is not None]
        if not wanted:
            return False
        if self.comparison == "minimum":
            return asserted >= min(wanted)
        return asserted in wanted

    def acr_amr(self, class_ref: str | None) -> tuple[str | None, tuple[str, ...]]:
        """What tokens say of an asserted class reference. With a table: the level that lists
        it, else the reference as sent, with no ``amr``: an API that trusts ``acr == "mfa"``
        must never get a level's name for a reference the table does not put in that level
        (a well-known name like MobileTwoFactorContract's "mfa", or an IdP that sends "mfa").
        A reference spelled like one of the levels gives no ``acr`` at all. Without a table:
        the well-known short names (``bridge.claims.authn_context``)."""
        if not self.levels:
            return acr_amr(class_ref)
        rank = self.rank_of_class_ref(class_ref)
        if rank is not None:
            level = self.levels[rank]
            return level.acr, level.amr or acr_amr(class_ref)[1]
        if not class_ref or self.rank_of_acr(class_ref) is not None:
            return None, ()
        return class_ref, ()


def _level(acr: str, *class_refs: str, amr: tuple[str, ...] = ()) -> AuthnLevel:
    return AuthnLevel(acr, class_refs, amr)


_PWD = ("pwd",)
_MFA = ("mfa",)
# Vendor values (docs/step-up.md says what each IdP needs switched on to honour them).
AUTHN_PRESETS: dict[str, AuthnContexts] = {
    "adfs": AuthnContexts((
        _level("pwd", PASSWORD_PROTECTED, _AC + "Password", amr=_PWD),
        _level("windows", "urn:federation:authentication:windows", _AC + "Kerberos", amr=_PWD),
        _level("mfa", MICROSOFT_MFA, amr=_MFA),
    ), "exact", "adfs"),
    "entra": AuthnContexts((
        _level("pwd", PASSWORD_PROTECTED, _AC + "Password", amr=_PWD),
        _level("mfa", MICROSOFT_MFA, amr=_MFA),
    ), "exact", "entra"),
    "okta": AuthnContexts((
        _level("pwd", "urn:okta:loa:1fa:pwd", "urn:okta:loa:1fa:any", PASSWORD_PROTECTED,
               amr=_PWD),
        _level("mfa", "urn:okta:loa:2fa:any", amr=_MFA),
    ), "exact", "okta"),
    "shibboleth": AuthnContexts((
        _level("pwd", REFEDS_SFA, PASSWORD_PROTECTED, amr=_PWD),
        _level("mfa", REFEDS_MFA, amr=_MFA),
    ), "exact", "shibboleth"),
    # Keycloak answers with the ACR names of its "ACR to LoA mapping" (realm settings): give
    # these two names levels there.
    "keycloak": AuthnContexts((
        _level("pwd", REFEDS_SFA, PASSWORD_PROTECTED, amr=_PWD),
        _level("mfa", REFEDS_MFA, amr=_MFA),
    ), "minimum", "keycloak"),
    # Google Workspace does not honour RequestedAuthnContext: a password level only.
    "google": AuthnContexts((
        _level("pwd", PASSWORD_PROTECTED, _AC + "unspecified", amr=_PWD),
    ), "exact", "google"),
}
NONE = AuthnContexts()


def _strings(value: Any, problems: Problems, what: str, *, limit: int) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v and len(v) <= limit and v.isprintable()
                       for v in value)):
        problems.add(f"must be a non-empty list of {what}")
        return ()
    return tuple(value)


def _parse_level(raw: Any, problems: Problems) -> AuthnLevel | None:
    if not isinstance(raw, dict):
        problems.add("must be a table with acr and class_refs")
        return None
    for key in sorted(set(raw) - {"acr", "class_refs", "amr"}):
        problems.at(key).add("unknown level setting")
    acr = raw.get("acr")
    if not isinstance(acr, str) or not ACR_PATTERN.match(acr):
        problems.at("acr").add("must be 1-64 printable ASCII characters without spaces")
        acr = None
    refs = _strings(raw.get("class_refs"), problems.at("class_refs"), "AuthnContextClassRef URIs",
                    limit=_MAX_CLASS_REF)
    amr: tuple[str, ...] = ()
    if "amr" in raw:
        amr = _strings(raw["amr"], problems.at("amr"), "RFC 8176 method names", limit=32)
    if acr is None or not refs:
        return None
    return AuthnLevel(acr, refs, amr)


def parse_authn_contexts(raw: Any, *, source: str) -> AuthnContexts:
    """Parse an ``[authn_contexts]`` table on top of its preset; raise ``ConfigError`` listing
    every problem."""
    problems = Problems(f"{source}: authn_contexts")
    if raw is None:
        return NONE
    if not isinstance(raw, dict):
        raise ConfigError(f"{problems.where}: must be a table")
    for key in sorted(set(raw) - {"preset", "comparison", "levels"}):
        problems.at(key).add("unknown authn_contexts setting")
    base = NONE
    preset = raw.get("preset")
    if preset is not None:
        if preset not in AUTHN_PRESETS:
            problems.at("preset").add(f"one of {', '.join(sorted(AUTHN_PRESETS))}")
        else:
            base = AUTHN_PRESETS[preset]
    comparison = raw.get("comparison", base.comparison)
    if comparison not in COMPARISONS:
        problems.at("comparison").add(f"one of {', '.join(COMPARISONS)}")
        comparison = "exact"
    numbered = list(enumerate(base.levels))
    if "levels" in raw:
        found = raw["levels"]
        if not isinstance(found, list) or not found:
            problems.at("levels").add("must be a non-empty list of levels, weakest first")
            found = []
        parsed = [(i, _parse_level(level, problems.at(f"levels[{i}]")))
                  for i, level in enumerate(found)]
        numbered = [(i, level) for i, level in parsed if level is not None]
    seen_acr: set[str] = set()
    seen_refs: set[str] = set()
    for i, level in numbered:
        if level.acr in seen_acr:
            problems.at(f"levels[{i}].acr").add(f"{level.acr!r} names two levels")
        for ref in level.class_refs:
            if ref in seen_refs:
                # Read back, a class reference must mean one level only.
                problems.at(f"levels[{i}].class_refs").add(f"{ref!r} is in two levels")
        seen_acr.add(level.acr)
        seen_refs.update(level.class_refs)
    problems.raise_any()
    return AuthnContexts(tuple(level for _, level in numbered), comparison,
                         preset if isinstance(preset, str) else None)
