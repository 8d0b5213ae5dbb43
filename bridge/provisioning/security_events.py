"""Security Event Tokens (RFC 8417) pushed to ``POST /events/<slug>`` (RFC 8935), from the
transmitter an IdP's ``security_events`` settings name.

A SET is accepted only when its signature verifies with a key of that transmitter (from the
settings or the JWKS URL they name, never from the token) under an allowed algorithm, its
``iss`` is the transmitter's, its ``aud`` is ours, its ``iat`` is recent and its ``jti`` has
not been seen for this IdP. Then, in the transaction that records the ``jti``:

* CAEP ``session-revoked`` ends the logins of that IdP session (the SAML SessionIndex);
* RISC ``account-disabled`` and ``account-purged`` end every login of the person and refuse new
  ones until ``account-enabled``; ``credential-compromise`` ends every login;
* anything else is acknowledged and recorded, and changes nothing.

The person is named as RFC 9493 subject identifiers (``sub_id``, or each event's ``subject``):
the ``email``, the ``sub`` of ``iss_sub`` or the ``id`` of ``opaque`` is taken as what the IdP's
logins carry as the subject (the NameID, or ``subject_attribute``). An ``iss_sub`` counts only
when its ``iss`` is this IdP's (its entity ID, or its transmitter's ``issuer``): another issuer's
``sub`` names nobody here, and the event is acknowledged and changes nothing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import jwt
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from bridge import audit
from bridge.errors import NotFound, SecurityEventRejected
from bridge.idps.event_settings import SecurityEventSettings
from bridge.idps.fetch import FetchPolicy
from bridge.idps.settings import IdentityProvider
from bridge.ip_forms import nat64_networks
from bridge.oauth.deprovisioned import deprovision, reinstate
from bridge.oauth.revocation import end_logins, end_persons_logins
from bridge.provisioning.scim_subjects import inactive_user_for
from bridge.provisioning.transmitter_keys import TransmitterKeys
from bridge.saml.subject import derive_subject
from bridge.store.models import AuthorizationCode, ReceivedSecurityEvent, RefreshFamily
from bridge.tokens.signing import ForeignTokenRefused, verify_foreign

if TYPE_CHECKING:
    from bridge.services import Services

log = logging.getLogger("bridge.security_events")

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
DISABLING = {RISC + "account-disabled": "event_account_disabled",
             RISC + "account-purged": "event_account_purged"}
CREDENTIAL_COMPROMISE = RISC + "credential-compromise"
ACCOUNT_ENABLED = RISC + "account-enabled"
# A SET older than this is refused, so its jti need only be remembered this long.
MAX_AGE_SECONDS = 24 * 3600
MAX_SET_BYTES = 64 * 1024
# A SET's claims nest about six objects deep (events, an event, its complex subject, a member);
# deeper is refused, so nothing that walks them can recurse far.
MAX_DEPTH = 16
_TOO_DEEP = f"The SET's claims nest deeper than {MAX_DEPTH} levels."


class SecurityEvents:
    def __init__(self, services: Services, fetch_policy: FetchPolicy | None = None) -> None:
        self.services = services
        self.keys = TransmitterKeys(
            services.clock, fetch_policy or FetchPolicy(
                allow_private=services.settings.insecure_metadata_private_addresses,
                max_bytes=256 * 1024,
                nat64_prefixes=nat64_networks(services.settings.nat64_prefixes)))

    def receiver_url(self, slug: str) -> str:
        return f"{self.services.settings.base_url}/events/{slug}"

    @audit.refusals_audited("security_event")
    def receive(self, slug: str, token: str) -> list[str]:
        """Verify and act on one pushed SET; the event types it carried."""
        idp = self.services.idps.get(slug)
        config = idp.settings.security_events if idp is not None else None
        if idp is None or config is None:
            raise NotFound("set_receiver_unknown", "No security event receiver at this address.")
        claims = self._verified(slug, idp, config, token)
        events = claims["events"]
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            session.add(ReceivedSecurityEvent(idp_slug=slug, jti=claims["jti"],
                                              expires_at=now + 2 * MAX_AGE_SECONDS))
            try:
                session.flush()  # the jti's primary key: a SET is acted on once
            except sa_exc.IntegrityError:
                raise SecurityEventRejected("set_replayed", "This SET has been received before.",
                                            log_detail={"jti": claims["jti"][:64]}) from None
            for event_type, event in events.items():
                self._act(session, idp, claims, event_type, event, now)
        return list(events)

    # --- verification ------------------------------------------------------------------------

    def _verified(self, slug: str, idp: IdentityProvider, config: SecurityEventSettings,
                  token: str) -> dict[str, Any]:
        if not token or len(token) > MAX_SET_BYTES or token.count(".") != 2:
            raise SecurityEventRejected("set_invalid", "The body is not a signed JWT.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SecurityEventRejected("set_invalid", "The body is not a signed JWT.") from None
        if header.get("alg") not in config.algorithms:
            raise SecurityEventRejected("set_signature_invalid",
                                        "The SET is not signed with an allowed algorithm.",
                                        set_error="invalid_key",
                                        log_detail={"alg": str(header.get("alg"))[:16]})
        if header.get("typ") not in (None, "secevent+jwt", "application/secevent+jwt"):
            raise SecurityEventRejected("set_invalid", "The JWT is not a SET (typ).",
                                        log_detail={"typ": str(header.get("typ"))[:32]})
        key = self.keys.key_for(slug, config, header.get("kid"), header["alg"])
        skew = idp.settings.clock_skew_seconds
        audience = config.audience or self.receiver_url(slug)
        try:
            claims = verify_foreign(token, key, alg=header["alg"], issuer=config.issuer,
                                    audience=audience, required=["iss", "aud", "iat", "jti"])
        except ForeignTokenRefused as refused:
            raise _refusal(refused) from None
        except RecursionError:  # JSON nested deeper than the decoder follows
            raise SecurityEventRejected("set_invalid", _TOO_DEEP) from None
        now = self.services.clock.now()
        times = [claims.get(name) for name in ("iat", "exp", "nbf")]
        if any(t is not None and (isinstance(t, bool) or not isinstance(t, int | float))
               for t in times):
            raise SecurityEventRejected("set_invalid", "iat, exp and nbf: numbers.")
        iat, exp, nbf = times
        assert iat is not None  # required above
        if (not now - MAX_AGE_SECONDS <= iat <= now + skew
                or (exp is not None and exp <= now - skew)
                or (nbf is not None and nbf > now + skew)):
            raise SecurityEventRejected("set_stale", "The SET was issued too long ago or in the "
                                        "future, or is expired (iat, exp, nbf).",
                                        log_detail={"iat": iat, "exp": exp, "nbf": nbf})
        jti, events = claims["jti"], claims.get("events")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise SecurityEventRejected("set_invalid", "jti: a string of 1 to 256 characters.")
        if not _storable(claims):
            # PostgreSQL refuses NUL in text and both databases a lone surrogate: refused here,
            # such a value would fail the transaction (jti, iss, subject, session index).
            raise SecurityEventRejected("set_invalid",
                                        "The SET holds a NUL character or an unpaired surrogate.")
        if not isinstance(events, dict) or not events or not all(
                isinstance(name, str) and isinstance(event, dict) for name, event in events.items()):
            raise SecurityEventRejected("set_invalid", "events: an object of event objects.")
        if _depth(claims) > MAX_DEPTH:
            raise SecurityEventRejected("set_invalid", _TOO_DEEP)
        subjects = [claims.get("sub_id"), *(event.get("subject") for event in events.values())]
        if any(_nests_complex(subject) for subject in subjects):
            # SSF §3.2: the members of a complex subject are simple identifiers.
            raise SecurityEventRejected("set_invalid",
                                        "A complex subject may not hold a complex subject.")
        return claims

    # --- what the events do ------------------------------------------------------------------

    def _act(self, session: Session, idp: IdentityProvider, claims: dict[str, Any],
             event_type: str, event: dict[str, Any], now: float) -> None:
        subject_id = claims.get("sub_id") or event.get("subject")
        if _names_foreign_issuer(idp, subject_id):
            subject_id = None  # another issuer's user: nobody here, as an unknown subject
        person = _person(idp, subject_id)
        actor = f"set:{claims['iss']}"
        detail = {"event": event_type, "jti": claims["jti"], "actor": actor}
        if event_type == SESSION_REVOKED and (person or _session_of(subject_id)):
            ended = self._end_session(session, idp, person, _session_of(subject_id), now)
            outcome, detail["families"] = "success", ended
        elif event_type in DISABLING and person:
            deprovision(session, idp_slug=idp.slug, subject=person, source="event",
                        reason=DISABLING[event_type], now=now, actor=actor)
            outcome = "success"
        elif event_type == CREDENTIAL_COMPROMISE and person:
            detail["families"] = end_persons_logins(
                session, idp_slug=idp.slug, subject=person, now=now,
                reason="event_credential_compromise")
            outcome = "success"
        elif event_type == ACCOUNT_ENABLED and person:
            # As a SCIM reactivation: not while a SCIM user of the person says inactive.
            held = inactive_user_for(session, idp_slug=idp.slug, subject=person)
            detail["reinstated"] = not held and reinstate(session, idp_slug=idp.slug,
                                                          subject=person, now=now, actor=actor,
                                                          source="event")
            if held:
                detail["kept_by"] = "inactive_scim_user"
            outcome = "success"
        else:
            # Acknowledged (RFC 8935 §2.2): an event we do not act on, or a subject we cannot
            # name, is recorded for the operator and changes nothing.
            outcome = "ignored"
            log.info("security event %s from %s for IdP %s: not acted on", event_type[:200],
                     claims["iss"], idp.slug)
        audit.record(session, at=now, event="security_event", outcome=outcome, idp_slug=idp.slug,
                     subject=person, detail=detail)

    def _end_session(self, session: Session, idp: IdentityProvider, person: str | None,
                     session_id: str | None, now: float) -> int:
        families = [RefreshFamily.idp_slug == idp.slug, RefreshFamily.expires_at > now]
        codes = [AuthorizationCode.idp_slug == idp.slug]
        if person:
            families.append(RefreshFamily.subject == person)
            codes.append(AuthorizationCode.subject == person)
        if session_id:
            families.append(RefreshFamily.session_index == session_id)
            codes.append(AuthorizationCode.session_index == session_id)
        return end_logins(session, families=families, codes=codes, now=now,
                          reason="event_session_revoked")


_REFUSALS = {
    "signature": ("set_signature_invalid", "The SET's signature does not verify.", "invalid_key"),
    "audience": ("set_audience_invalid", "The SET is not meant for this receiver (aud).",
                 "invalid_audience"),
    "issuer": ("set_issuer_invalid", "The SET's issuer is not this IdP's transmitter.",
               "invalid_issuer"),
}


def _refusal(refused: ForeignTokenRefused) -> SecurityEventRejected:
    code, detail, err = _REFUSALS.get(refused.reason, ("set_invalid", "The SET is not valid.",
                                                       "invalid_request"))
    return SecurityEventRejected(code, detail, set_error=err, log_detail={"why": str(refused)})


def _person(idp: IdentityProvider, subject_id: object) -> str | None:
    """Our ``sub`` for the person an RFC 9493 subject identifier (or SSF's complex ``user``)
    names, or None."""
    if not isinstance(subject_id, dict):
        return None
    if subject_id.get("format") == "complex":
        return _person(idp, subject_id.get("user"))
    value = {"email": subject_id.get("email"), "iss_sub": subject_id.get("sub"),
             "opaque": subject_id.get("id")}.get(str(subject_id.get("format")))
    if not isinstance(value, str) or not value or len(value) > 1024:
        return None
    return derive_subject(idp.metadata.entity_id, value)


def _issuers(idp: IdentityProvider) -> set[str]:
    """The ``iss`` an ``iss_sub`` identifier of this IdP's people may carry: the issuer of the
    logins' NameIDs (the entity ID) or this IdP's SET transmitter (its ``issuer``)."""
    config = idp.settings.security_events
    return {idp.metadata.entity_id} | ({config.issuer} if config is not None else set())


def _names_foreign_issuer(idp: IdentityProvider, subject_id: object) -> bool:
    """Whether the identifier is (or a complex one holds) an ``iss_sub`` of another issuer:
    its ``sub`` is that issuer's, and may equal one of our people's subject values by chance or
    by design."""
    if not isinstance(subject_id, dict):
        return False
    if subject_id.get("format") == "complex":
        return any(_names_foreign_issuer(idp, part) for part in subject_id.values())
    # Any iss that is not one of the names, a list or an object included, is another issuer.
    issuer = subject_id.get("iss")
    return subject_id.get("format") == "iss_sub" and not (isinstance(issuer, str)
                                                          and issuer in _issuers(idp))


def _storable(value: object) -> bool:
    """Whether every string of a decoded JSON value, object keys included, is free of NUL and
    of unpaired surrogates (which JSON's \\u escapes can carry and no database stores)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _depth(value: object) -> int:
    """How deep objects and arrays nest in a decoded JSON value."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _nests_complex(subject_id: object) -> bool:
    return (isinstance(subject_id, dict) and subject_id.get("format") == "complex"
            and any(isinstance(member, dict) and member.get("format") == "complex"
                    for member in subject_id.values()))


def _session_of(subject_id: object) -> str | None:
    """The IdP session a complex subject names (``session``: an opaque id): the SessionIndex of
    the SAML logins made in it."""
    if not isinstance(subject_id, dict) or subject_id.get("format") != "complex":
        return None
    named = subject_id.get("session")
    if not isinstance(named, dict) or named.get("format") != "opaque":
        return None
    value = named.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 1024 else None
