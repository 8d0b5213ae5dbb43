"""What a client asks of the login itself (OIDC Core §3.1.2.1): ``acr_values``, ``max_age`` and
``prompt``. Parsed here from the authorization request, stored with the outstanding SAML request,
and checked against the IdP's answer in ``bridge.login.step_up``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge.claims.authn_levels import ACR_PATTERN
from bridge.errors import AuthorizeError

MAX_ACR_VALUES = 8
# One year: longer is no requirement a login could fail, and keeps the arithmetic small.
MAX_MAX_AGE = 366 * 86400
# Checked before int(): Python refuses to convert more than 4300 digits (a ValueError, not a
# refusal), and long before that no digit string is a max_age we accept.
MAX_AGE_DIGITS = 20
SUPPORTED_PROMPTS = ("login", "none")
# OIDC Core §3.1.2.1 values the bridge cannot honour: it shows no consent or account picker of
# its own, and cannot make a SAML IdP show one.
UNSUPPORTED_PROMPTS = ("consent", "select_account")


@dataclass(frozen=True)
class AuthnRequirement:
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    prompt: str | None = None  # "login", "none" or None

    @property
    def fresh_login(self) -> bool:
        """The IdP must authenticate the person again (SAML ForceAuthn). The bridge keeps no
        session of its own, so it cannot tell how old the IdP's is: any max_age asks for a new
        login rather than failing one that turns out too old (docs/decisions/0018)."""
        return self.prompt == "login" or self.max_age is not None

    @property
    def passive(self) -> bool:
        return self.prompt == "none"

    def stored(self) -> dict[str, object]:
        """The columns of the outstanding request that keep this requirement."""
        return {"acr_values": " ".join(self.acr_values) or None, "max_age": self.max_age,
                "prompt": self.prompt}

    @classmethod
    def from_stored(cls, acr_values: str | None, max_age: int | None,
                    prompt: str | None) -> AuthnRequirement:
        return cls(tuple((acr_values or "").split()), max_age, prompt)


NONE = AuthnRequirement()


def parse_authn_requirement(params: Mapping[str, str],
                            refuse: Callable[[str, str], AuthorizeError]) -> AuthnRequirement:
    """The requirement of an authorization request whose client and redirect URI are verified;
    ``refuse(code, detail)`` makes the error that goes back to the client."""
    acr_values = tuple(dict.fromkeys((params.get("acr_values") or "").split()))
    if len(acr_values) > MAX_ACR_VALUES or not all(ACR_PATTERN.match(a) for a in acr_values):
        raise refuse("acr_values_invalid",
                     f"acr_values: at most {MAX_ACR_VALUES} values of printable ASCII.")
    max_age = None
    raw_age = params.get("max_age")
    if raw_age:
        # OIDC Core §3.1.2.1: a non-negative integer of seconds; "+1" or "1.0" are not.
        if (len(raw_age) > MAX_AGE_DIGITS or not raw_age.isascii() or not raw_age.isdigit()
                or int(raw_age) > MAX_MAX_AGE):
            raise refuse("max_age_invalid",
                         f"max_age must be a whole number of seconds up to {MAX_MAX_AGE}.")
        max_age = int(raw_age)
    prompts = (params.get("prompt") or "").split()
    if "none" in prompts and len(prompts) > 1:
        raise refuse("prompt_invalid", "prompt=none cannot be combined with another value.")
    for value in prompts:
        if value in UNSUPPORTED_PROMPTS:
            raise refuse("prompt_unsupported", f"prompt={value} is not supported.")
        if value not in SUPPORTED_PROMPTS:
            raise refuse("prompt_invalid", "prompt holds an unknown value.")
    prompt = "none" if "none" in prompts else ("login" if "login" in prompts else None)
    return AuthnRequirement(acr_values, max_age, prompt)
