"""Step-up and re-authentication through SAML: a client's ``acr_values``, ``max_age`` and
``prompt`` become what the AuthnRequest asks (``authn_options``), and the IdP's answer is held to
them (``check_login``). IdPs do return weaker contexts and old sessions: the answer is checked,
never trusted."""

from __future__ import annotations

from bridge.errors import AuthorizeError, LoginUnmet
from bridge.idps.settings import IdentityProvider
from bridge.oauth.authn_requirement import AuthnRequirement
from bridge.saml.sp import AuthnOptions
from bridge.saml.verified import VerifiedAssertion


def authn_options(requirement: AuthnRequirement, idp: IdentityProvider) -> AuthnOptions:
    """The AuthnRequest's ForceAuthn, IsPassive and RequestedAuthnContext for ``requirement``;
    ``acr_values`` this IdP has no level for are refused before the browser leaves."""
    contexts = idp.settings.authn_contexts
    unknown = [acr for acr in requirement.acr_values if contexts.rank_of_acr(acr) is None]
    if unknown:
        offered = " ".join(contexts.acr_values) or "none"
        raise AuthorizeError("acr_values_unsupported",
                             f"The identity provider offers these acr values: {offered}.",
                             redirectable=True,
                             log_detail={"idp": idp.slug, "unknown": unknown[:8]})
    return AuthnOptions(force_authn=requirement.fresh_login, is_passive=requirement.passive,
                        class_refs=contexts.requested_class_refs(requirement.acr_values),
                        comparison=contexts.comparison)


def check_login(requirement: AuthnRequirement, idp: IdentityProvider,
                verified: VerifiedAssertion, *, requested_at: float, now: float) -> None:
    """Raise ``LoginUnmet`` unless the verified assertion meets ``requirement``, which was asked
    at ``requested_at``. Times allow the IdP's clock skew."""
    skew = idp.settings.clock_skew_seconds
    asserted = verified.authn_context_class
    instant = verified.authn_instant
    detail = {"idp": idp.slug, "asserted": (asserted or "")[:256],
              "authn_instant": int(instant), "requested_at": int(requested_at)}
    if requirement.passive and instant > requested_at + skew:
        # A login newer than the request: the IdP authenticated the person while asked not to
        # interact (it ignored IsPassive). Nothing says the person saw what they agreed to.
        raise LoginUnmet("authn_passive_ignored",
                         "The identity provider asked for a login although none was allowed.",
                         oauth_error="login_required", log_detail=detail)
    if requirement.prompt == "login" and instant < requested_at - skew:
        raise LoginUnmet("authn_instant_too_old",
                         "The identity provider did not authenticate the person again.",
                         log_detail=detail)
    if requirement.max_age is not None and instant < now - requirement.max_age - skew:
        raise LoginUnmet("authn_instant_too_old",
                         "The authentication is older than max_age allows.",
                         log_detail={**detail, "max_age": requirement.max_age})
    if not requirement.acr_values:
        return
    if not asserted:
        raise LoginUnmet("authn_context_missing",
                         "The identity provider did not say how the person authenticated.",
                         log_detail=detail)
    if not idp.settings.authn_contexts.satisfies(asserted, requirement.acr_values):
        raise LoginUnmet("authn_context_unmet",
                         "The identity provider authenticated the person less strongly than "
                         "asked.", log_detail={**detail, "acr_values": list(requirement.acr_values)})
