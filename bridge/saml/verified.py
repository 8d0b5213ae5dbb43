"""The facts of an assertion whose signature verified, and the one way to build them: shared by
the assertion consumer (``bridge.saml.response``) and the bearer grant (``bridge.saml.bearer``),
so both read the same facts from the verified element the same way."""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

from lxml import etree

from bridge.errors import BridgeError, LoginUnmet
from bridge.saml import ns
from bridge.saml.assertion_checks import saml_time, text_of
from bridge.saml.idp import MAX_CLOCK_SKEW, SamlIdp
from bridge.saml.ns import q

_CONSTRUCT = object()


class VerifiedAssertion:
    """Facts read from an assertion whose signature verified. Only ``verified_assertion`` builds
    one."""

    __slots__ = (
        "idp_slug", "idp_entity_id", "assertion_id", "name_id", "name_id_format",
        "attributes", "authn_instant", "session_index", "session_not_on_or_after",
        "authn_context_class", "expires_at", "in_response_to", "uses_sha1",
    )

    def __init__(self, key: object, **facts: object) -> None:
        if key is not _CONSTRUCT:
            raise TypeError("VerifiedAssertion is built only by bridge.saml.verified")
        for name in self.__slots__:
            object.__setattr__(self, name, facts[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("VerifiedAssertion is immutable")

    idp_slug: str
    idp_entity_id: str
    assertion_id: str
    name_id: str
    name_id_format: str | None
    attributes: dict[str, tuple[str, ...]]
    authn_instant: float
    session_index: str | None
    session_not_on_or_after: float | None
    authn_context_class: str | None
    expires_at: float
    in_response_to: str | None
    uses_sha1: bool


class AuthnFacts(NamedTuple):
    """What an AuthnStatement says of the authentication, its times already parsed."""

    instant: float
    session_index: str | None
    session_not_on_or_after: float | None
    # Read (text_of) only when the assertion is built, after every other check.
    context_class_ref: etree._Element | None


def authn_facts(authn: etree._Element | None, assertion: etree._Element) -> AuthnFacts:
    """The facts of ``authn``; without an AuthnStatement (a bearer assertion may carry none, RFC
    7522 §3) the assertion's IssueInstant stands for the time of authentication."""
    if authn is None:
        return AuthnFacts(saml_time(assertion.get("IssueInstant"), "AuthnInstant"), None, None,
                          None)
    instant = saml_time(authn.get("AuthnInstant"), "AuthnInstant")
    session_end = authn.get("SessionNotOnOrAfter")
    return AuthnFacts(
        instant=instant,
        session_index=authn.get("SessionIndex"),
        session_not_on_or_after=(saml_time(session_end, "SessionNotOnOrAfter") if session_end
                                 else None),
        context_class_ref=authn.find(
            f"{q(ns.SAML, 'AuthnContext')}/{q(ns.SAML, 'AuthnContextClassRef')}"),
    )


def verified_assertion(assertion: etree._Element, *, idp: SamlIdp, name_id: etree._Element,
                       attributes: dict[str, tuple[str, ...]], authn: AuthnFacts,
                       conditions: etree._Element, confirmation_expiry: float,
                       in_response_to: str | None, uses_sha1: bool,
                       now: float) -> VerifiedAssertion:
    """The facts of ``assertion``, which the caller verified: its signature and every rule of its
    profile. Values come from the verified element only. An AuthnInstant no login can have is
    refused first, with the facts when they can be read (``ImplausibleAuthnInstant``)."""

    def facts() -> VerifiedAssertion:
        expires_at = confirmation_expiry
        not_on_or_after = conditions.get("NotOnOrAfter")
        if not_on_or_after:
            expires_at = max(expires_at, saml_time(not_on_or_after, "NotOnOrAfter"))
        class_ref = authn.context_class_ref
        return VerifiedAssertion(
            _CONSTRUCT,
            idp_slug=idp.slug,
            idp_entity_id=idp.metadata.entity_id,
            assertion_id=assertion.get("ID"),
            name_id=text_of(name_id),
            name_id_format=name_id.get("Format"),
            attributes=attributes,
            authn_instant=authn.instant,
            session_index=authn.session_index,
            session_not_on_or_after=authn.session_not_on_or_after,
            authn_context_class=text_of(class_ref) if class_ref is not None else None,
            # The replay-cache row must outlive the assertion under any skew this IdP may later
            # be given (up to MAX_CLOCK_SKEW), not only the one in force now.
            expires_at=expires_at + MAX_CLOCK_SKEW,
            in_response_to=in_response_to,
            uses_sha1=uses_sha1,
        )

    try:
        check_authn_instant(authn.instant, now=now, skew=idp.settings.clock_skew_seconds)
    except ImplausibleAuthnInstant as implausible:
        # The refusal stands whatever reading the rest of the facts would say of them.
        with contextlib.suppress(BridgeError):
            implausible.refused = facts()
        raise
    return facts()


class ImplausibleAuthnInstant(LoginUnmet):
    """An AuthnInstant no login can have (``check_authn_instant``). ``refused`` holds the facts of
    the assertion, verified in every other way, or None: only to ask about its person (a
    deprovisioned person is refused as such, whatever else is wrong with the login), never to
    complete a login with."""

    def __init__(self, code: str, public_detail: str, *, log_detail: dict[str, Any]) -> None:
        super().__init__(code, public_detail, oauth_error="access_denied", log_detail=log_detail)
        self.refused: VerifiedAssertion | None = None


def check_authn_instant(instant: float, *, now: float, skew: float) -> None:
    """Refuse an authentication time no login can have: one still to come (beyond the IdP's
    clock skew), or one before 1970. It becomes ``auth_time`` of every token of the login, and
    of its refresh family for as long as that lives: a future one would claim a fresh login
    all along."""
    detail: dict[str, Any] = {"authn_instant": round(instant), "now": round(now)}
    if instant > now + skew:
        raise ImplausibleAuthnInstant(
            "authn_instant_in_future",
            "The identity provider dates the authentication in the future.",
            log_detail={**detail, "seconds_ahead": round(instant - now)})
    if instant < 0:
        raise ImplausibleAuthnInstant(
            "authn_instant_invalid", "The identity provider dates the authentication before 1970.",
            log_detail=detail)
