"""The use cases: start a login, consume the IdP's answer, exchange codes, refresh, revoke.

HTTP stays outside (``bridge.web``); XML stays inside ``bridge.saml``; JWTs inside
``bridge.tokens``. Every success and every refusal leaves an audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from cryptography.fernet import Fernet
from sqlalchemy import ColumnElement, Connection, Select, bindparam, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from bridge import audit, metrics
from bridge.authorization import AuthorizationRequest, check_code_verifier
from bridge.claims import (
    GroupBudget,
    build_claims,
    id_token_claims,
    token_claims,
    userinfo_claims,
)
from bridge.clock import Clock
from bridge.config import ClientConfig, Settings
from bridge.errors import AuthorizeError, BridgeError, ConfigError, IdpUnknown, SamlRejected, TokenError
from bridge.identity import Identity
from bridge.idp_endpoints import normalized_origins
from bridge.idp_registry import IdpRegistry, register_file_idps
from bridge.saml import ns
from bridge.saml import response as saml_response
from bridge.saml.bearer import verify_bearer_assertion
from bridge.saml.bindings import OutgoingMessage
from bridge.saml.idp import IdentityProvider, load_idp_directory
from bridge.saml.logout import verify_logout_request, verify_logout_response
from bridge.saml.sp import authn_request, logout_request, logout_response
from bridge.saml.subject import to_identity
from bridge.saml_keys import SamlKeys
from bridge.store.db import Database
from bridge.store.models import (
    AuditEvent,
    AuthnRequestRecord,
    AuthorizationCode,
    ConsumedAssertion,
    RefreshFamily,
    RefreshToken,
)
from bridge.tokens import refresh as refresh_tokens
from bridge.tokens import signing
from bridge.tokens.access import ACCESS_TOKEN_TYPE, issue_access_token, issue_id_token, login_of
from bridge.tokens.keys import ActiveKey, KeyRing, derive_secret, load_kek
from bridge.tokens.refresh import RefreshPolicy
from bridge.tokens.secrets_util import (
    constant_time_equal,
    new_secret,
    pkce_s256,
    seal,
    secret_hash,
    unseal,
)

log = logging.getLogger("bridge.federation")

# Prepared once: the login path's statements (see also tokens/refresh.py).
_GET_REQUEST = select(*AuthnRequestRecord.__table__.columns).where(
    AuthnRequestRecord.id == bindparam("id"))
_CONSUME_REQUEST = (update(AuthnRequestRecord)
                    .where(AuthnRequestRecord.id == bindparam("request"),
                           AuthnRequestRecord.consumed_at.is_(None))
                    .values(consumed_at=bindparam("now")))
_INSERT_ASSERTION = insert(ConsumedAssertion)
_INSERT_CODE = insert(AuthorizationCode)
_GET_CODE = select(*AuthorizationCode.__table__.columns).where(
    AuthorizationCode.code_hash == bindparam("h"))
_USE_CODE = (update(AuthorizationCode)
             .where(AuthorizationCode.code_hash == bindparam("h"),
                    AuthorizationCode.used_at.is_(None))
             .values(used_at=bindparam("now")))
_LINK_CODE = (update(AuthorizationCode).where(AuthorizationCode.code_hash == bindparam("h"))
              .values(family_id=bindparam("family")))

ACCESS_TOKEN_URN = "urn:ietf:params:oauth:token-type:access_token"
# How long the link that posts our LogoutRequest (HTTP-POST binding) may be followed: the client
# sends the browser there right after /logout answers.
LOGOUT_TICKET_SECONDS = 300
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SAML2_BEARER = "urn:ietf:params:oauth:grant-type:saml2-bearer"
# JWT and RFC 9068 claims that a re-issued token sets anew, never copies.
_REGISTERED = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope",
                         "auth_time"})


def _use_assertion(connection: Connection, verified: saml_response.VerifiedAssertion) -> None:
    """Enter the assertion in the replay cache, in the caller's transaction. The primary key (IdP,
    assertion ID) makes acceptance once-only across every process and node (IntegrityError on a
    second use); the row lives until the assertion could no longer be valid."""
    connection.execute(_INSERT_ASSERTION, {"idp_entity_id": verified.idp_entity_id,
                                           "assertion_id": verified.assertion_id,
                                           "expires_at": verified.expires_at})


def spend_codes(session: Session, *conditions: ColumnElement[bool], now: float) -> None:
    """Mark the unexchanged authorization codes matching ``conditions`` used, in the caller's
    transaction: a login that is ended must not come back through a code issued just before."""
    session.execute(update(AuthorizationCode)
                    .where(AuthorizationCode.used_at.is_(None), *conditions)
                    .values(used_at=now))


class SpecialLogin(Protocol):
    def complete(self, record: Any, identity: Identity, idp: IdentityProvider) -> str:
        """Handle a verified login; return where the browser goes."""
        ...

    def failed(self, request_id: str, error: BridgeError) -> str | None:
        """Handle a refused login; return where the browser goes, or None to show the error."""
        ...


@dataclass(frozen=True)
class LoginStart:
    # The AuthnRequest on its way to the IdP: a redirect, or a form the browser posts.
    message: OutgoingMessage
    browser_token: str
    request_id: str


@dataclass(frozen=True)
class IdpChoice:
    """Several IdPs and nothing to choose by: the user picks one."""

    idps: tuple[IdentityProvider, ...]


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str
    client: ClientConfig
    id_token: str | None = None
    # Set while the client's claims version is being retired: the last day it is promised.
    claims_sunset: dt.date | None = None
    issued_token_type: str | None = None

    def body(self, *, include_refresh: bool) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if include_refresh and self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.id_token:
            body["id_token"] = self.id_token
        if self.scope:
            body["scope"] = self.scope
        if self.issued_token_type is not None:
            body["issued_token_type"] = self.issued_token_type  # RFC 8693 §2.2.1
        if self.claims_sunset is not None:
            body["claims_version_deprecated"] = True
            body["claims_version_sunset"] = self.claims_sunset.isoformat()
        return body


class Bridge:
    def __init__(self, settings: Settings, db: Database, clock: Clock,
                 idps: Mapping[str, IdentityProvider]) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.idps = idps
        kek_text = load_kek(settings.key_encryption_key, instance_dir=settings.instance_dir,
                            production=settings.is_production)
        kek = Fernet(kek_text.encode("ascii"))
        # Successors of refresh tokens are derived, not stored: a retried refresh within the
        # reuse interval recomputes the same successor (tokens/refresh.py).
        self.successor_key = derive_secret(kek_text, "refresh-successor")
        # Seals the link that carries a logout to an IdP whose Single Logout takes HTTP-POST only.
        self.logout_ticket_key = derive_secret(kek_text, "logout-ticket")
        # Makes the IDs of our LogoutRequests recognisable in the IdP's LogoutResponse.
        self.logout_request_key = derive_secret(kek_text, "logout-request-id")
        algorithms = {settings.token_signing_alg, *(c.token_signing_alg for c in settings.clients)}
        self.keys = KeyRing(db, kek, clock, algorithms=algorithms,
                            access_token_ttl=settings.access_token_ttl_seconds)
        self.sp_keys = SamlKeys(db, kek, clock, entity_id=settings.sp_entity_id,
                                lead_seconds=settings.sp_signing_key_lead_days * 86400.0,
                                retention_seconds=settings.sp_signing_key_retention_days * 86400.0)
        # Logins that end in the bridge itself (admin sign-in, test logins), by pseudo client ID.
        self.special_logins: dict[str, SpecialLogin] = {}
        check_idp_initiated_targets(settings, idps)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Bridge:
        now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        files = load_idp_directory(settings.idp_metadata_dir, now=now)
        shared_origins = normalized_origins(settings.idp_shared_origins)
        db = Database(settings.database_url)
        try:
            db.require_migrated()
            register_file_idps(db, files, settings.idp_metadata_dir, shared_origins=shared_origins)
        except BaseException:
            db.dispose()  # start-up stops here: leave no connection open behind
            raise
        bridge = cls(settings, db, clock,
                     IdpRegistry(db, clock, files, shared_origins=shared_origins))
        bridge.keys.ensure_keys()
        bridge.sp_keys.ensure_keys()
        for problem in bridge.key_problems():  # /readyz keeps failing, naming it too
            log.error(problem)
        return bridge

    def key_problems(self) -> list[str]:
        """Every stored key the configured key-encryption key cannot decrypt, each named, for
        `bridge check` and /readyz: a wrong key otherwise shows only at the first signature or
        the first encrypted assertion."""
        names = ([f"signing key {kid}" for kid in self.keys.undecryptable()]
                 + [f"SAML key {key_id}" for key_id in self.sp_keys.undecryptable()])
        if not names:
            return []
        return [f"key_encryption_key: cannot decrypt {', '.join(names)}: BRIDGE_KEY_ENCRYPTION_KEY "
                "is not the key they were stored with (set the one this database's keys were "
                "made with)"]

    def service_provider(self, slug: str) -> saml_response.ServiceProvider:
        return saml_response.ServiceProvider(entity_id=self.settings.sp_entity_id,
                                             acs_url=self.settings.acs_url(slug))

    # --- 1. /authorize -> AuthnRequest ---------------------------------------------------------

    def choose_idp(self, request: AuthorizationRequest) -> IdentityProvider | IdpChoice:
        if request.idp is not None:
            idp = self.idps.get(request.idp)
            if idp is None:
                raise AuthorizeError("idp_unknown", "Unknown idp.", redirectable=True,
                                     log_detail={"idp": request.idp[:64]})
            return self._current(idp)
        if len(self.idps) == 1:
            return self._current(next(iter(self.idps.values())))
        if request.login_hint and "@" in request.login_hint:
            domain = request.login_hint.rsplit("@", 1)[1].lower()
            matches = [i for i in self.idps.values() if domain in i.settings.email_domains]
            if len(matches) == 1:
                return self._current(matches[0])
        if not self.idps:
            raise AuthorizeError("idp_unknown", "No identity provider is configured.",
                                 redirectable=True, oauth_error="temporarily_unavailable")
        return IdpChoice(tuple(sorted(self.idps.values(), key=lambda i: i.display_name)))

    def _current(self, idp: IdentityProvider) -> IdentityProvider:
        try:
            idp.require_current_metadata(self.clock.now())
        except SamlRejected as error:
            raise AuthorizeError(error.code, error.public_detail, redirectable=True,
                                 oauth_error="temporarily_unavailable",
                                 log_detail=error.log_detail) from None
        return idp

    def start_login(self, request: AuthorizationRequest, idp: IdentityProvider,
                    browser_token: str | None) -> LoginStart:
        now = self.clock.now()
        idp.require_current_metadata(now)
        if not browser_token or len(browser_token) > 64:
            browser_token = new_secret()
        request_id, message = authn_request(idp, self.service_provider(idp.slug), now=now,
                                            signing_key=self.sp_keys.signing_key)
        with self.db.transaction() as session:
            session.add(AuthnRequestRecord(
                id=request_id,
                idp_slug=idp.slug,
                client_id=request.client.client_id,
                redirect_uri=request.redirect_uri,
                state=request.state,
                code_challenge=request.code_challenge,
                scope=request.scope,
                nonce=request.nonce,
                browser_hash=secret_hash(browser_token),
                created_at=now,
                expires_at=now + self.settings.authn_request_ttl_seconds,
            ))
        return LoginStart(message=message, browser_token=browser_token, request_id=request_id)

    # --- 2. ACS: SAML Response -> authorization code ------------------------------------------

    def complete_login(self, slug: str, posted_response: str | None, browser_token: str | None,
                       *, relay_state: str | None = None, error_id: str) -> str:
        """Consume a posted SAMLResponse; return where to send the browser: the client's
        redirect_uri with a code, or (IdP-initiated) the client's login start URL."""
        context: dict[str, str | None] = {"idp": slug, "client": None}
        try:
            return self._complete_login(slug, posted_response, browser_token, relay_state, context)
        except BridgeError as error:
            self._audit_refusal("login", error, error_id=error_id, idp_slug=slug,
                                client_id=context["client"])
            special = self.special_logins.get(context.get("special") or "")
            if special is not None and context.get("request"):
                destination = special.failed(str(context["request"]), error)
                if destination is not None:
                    return destination
            raise

    def _complete_login(self, slug: str, posted: str | None, browser_token: str | None,
                        relay_state: str | None, context: dict[str, str | None]) -> str:
        idp = self.idps.get(slug)
        if idp is None:
            raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
        idp.require_current_metadata(self.clock.now())
        if not posted:
            raise SamlRejected("saml_malformed", "The request carries no SAMLResponse.")
        received = saml_response.receive(posted, idp=idp, clock=self.clock,
                                         max_bytes=self.settings.max_saml_response_bytes,
                                         decryption_keys=self.sp_keys.decryption_keys())
        now = self.clock.now()
        request_id = received.claimed_in_response_to
        if request_id is None:
            if self._has_outstanding_request(slug, browser_token, now):
                raise SamlRejected("saml_request_mismatch",
                                   "The response answers no request, but this browser is waiting "
                                   "for the answer to one.")
            if not idp.settings.allow_idp_initiated:
                raise SamlRejected("saml_unsolicited",
                                   "This IdP may not start logins (IdP-initiated SSO is disabled).")
            return self._idp_initiated(idp, received, relay_state, context)
        with self.db.connection() as connection:
            record = connection.execute(_GET_REQUEST, {"id": request_id}).first()
        if record is None or record.idp_slug != slug or record.expires_at <= now:
            raise SamlRejected("saml_request_unknown",
                               "The response answers a login request we have no record of.",
                               log_detail={"in_response_to": request_id[:128],
                                           "expired": bool(record and record.expires_at <= now)})
        context["client"] = record.client_id
        if record.consumed_at is not None:
            raise SamlRejected("saml_replay", "This login response has already been used.")
        if not browser_token or not constant_time_equal(secret_hash(browser_token),
                                                        record.browser_hash):
            raise SamlRejected("saml_browser_mismatch",
                               "The login finished in a different browser than it started in.")
        special = self.special_logins.get(record.client_id)
        if special is not None:
            context["special"], context["request"] = record.client_id, record.id
            verified = saml_response.verify(received, idp=idp, sp=self.service_provider(slug),
                                            expected_request_id=record.id, clock=self.clock)
            identity = to_identity(verified, idp)
            self._warn_if_sha1(idp, verified)
            try:
                with self.db.connection() as connection:
                    self._consume(connection, record.id, verified, now)
            except sa_exc.IntegrityError:
                raise SamlRejected("saml_replay", "This assertion has already been used.") from None
            return special.complete(record, identity, idp)
        client = self.settings.client(record.client_id)
        if client is None:
            raise SamlRejected("client_unknown", "The client of this login is no longer registered.")

        verified = saml_response.verify(received, idp=idp, sp=self.service_provider(slug),
                                        expected_request_id=record.id, clock=self.clock)
        identity = to_identity(verified, idp)
        claims = build_claims(client.claims_version, identity, idp.settings.mapping)
        self._warn_if_sha1(idp, verified)
        code = new_secret()
        try:
            with self.db.connection() as connection:
                self._consume(connection, record.id, verified, now)
                connection.execute(_INSERT_CODE, {
                    "code_hash": secret_hash(code),
                    "client_id": client.client_id,
                    "redirect_uri": record.redirect_uri,
                    "code_challenge": record.code_challenge,
                    "scope": record.scope,
                    "nonce": record.nonce,
                    "subject": identity.subject,
                    "idp_slug": slug,
                    "claims_json": json.dumps(claims, separators=(",", ":")),
                    "auth_time": identity.auth_time,
                    "session_index": identity.session_index,
                    "session_not_on_or_after": identity.session_not_on_or_after,
                    "name_id": identity.name_id,
                    "created_at": now,
                    "expires_at": now + self.settings.authorization_code_ttl_seconds,
                })
                audit.record(connection, at=now, event="login", outcome="success", idp_slug=slug,
                             client_id=client.client_id, subject=identity.subject,
                             detail={"sha1": verified.uses_sha1} if verified.uses_sha1 else None)
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This assertion has already been used.") from None
        query = {"code": code}
        if record.state is not None:
            query["state"] = record.state
        separator = "&" if "?" in record.redirect_uri else "?"
        return record.redirect_uri + separator + urlencode(query)

    @staticmethod
    def _consume(connection: Connection, request_id: str,
                 verified: saml_response.VerifiedAssertion, now: float) -> None:
        """Use the outstanding request and the assertion, once each, in the caller's transaction."""
        consumed = connection.execute(_CONSUME_REQUEST, {"request": request_id, "now": now})
        if consumed.rowcount != 1:
            raise SamlRejected("saml_replay", "This login response has already been used.")
        _use_assertion(connection, verified)

    def _use_unsolicited(self, verified: saml_response.VerifiedAssertion, *, event: str,
                         outcome: str, client_id: str, subject: str) -> None:
        """Use an assertion that answers no request of ours (IdP-initiated login, bearer grant)
        once, and audit it, in one transaction."""
        try:
            with self.db.connection() as connection:
                _use_assertion(connection, verified)
                audit.record(connection, at=self.clock.now(), event=event, outcome=outcome,
                             idp_slug=verified.idp_slug, client_id=client_id, subject=subject)
        except sa_exc.IntegrityError:
            raise SamlRejected("saml_replay", "This assertion has already been used.") from None

    def start_special_login(self, purpose: str, idp: IdentityProvider, return_to: str,
                            browser_token: str | None) -> LoginStart:
        """A login that ends in one of the bridge's own handlers (admin sign-in, test login)
        instead of at an OAuth client: same request, binding and checks."""
        assert purpose in self.special_logins
        pseudo = ClientConfig(client_id=purpose, redirect_uris=(return_to,), audience=purpose)
        request = AuthorizationRequest(client=pseudo, redirect_uri=return_to, state=None,
                                       code_challenge=None, scope="", nonce=None, idp=idp.slug,
                                       login_hint=None)
        return self.start_login(request, idp, browser_token)

    def _has_outstanding_request(self, slug: str, browser_token: str | None, now: float) -> bool:
        if not browser_token:
            return False
        with self.db.transaction() as session:
            found = session.scalar(select(AuthnRequestRecord.id).where(
                AuthnRequestRecord.browser_hash == secret_hash(browser_token),
                AuthnRequestRecord.idp_slug == slug,
                AuthnRequestRecord.consumed_at.is_(None),
                AuthnRequestRecord.expires_at > now,
            ).limit(1))
        return found is not None

    def _idp_initiated(self, idp: IdentityProvider, received: saml_response.ReceivedResponse,
                       relay_state: str | None, context: dict[str, str | None]) -> str:
        """An unsolicited response never becomes tokens: that would let an attacker sign a victim's
        browser into the attacker's account (login CSRF). It is verified and consumed, and the
        browser goes to the client's login start URL to begin a normal SP-initiated login, which
        the IdP's session completes without a password prompt."""
        allowed = idp.settings.idp_initiated_clients
        target = relay_state or allowed[0]
        if target not in allowed:
            # RelayState is only ever one of the configured client IDs, never a URL.
            raise SamlRejected("saml_relay_state_invalid",
                               "RelayState does not name a client this IdP may start logins for.",
                               log_detail={"relay_state": (relay_state or "")[:200]})
        context["client"] = target
        client = self.settings.client(target)
        assert client is not None and client.login_start_uri  # checked at start-up
        verified = saml_response.verify(received, idp=idp, sp=self.service_provider(idp.slug),
                                        expected_request_id=None, clock=self.clock)
        identity = to_identity(verified, idp)
        self._warn_if_sha1(idp, verified)
        self._use_unsolicited(verified, event="login_idp_initiated", outcome="redirected",
                              client_id=client.client_id, subject=identity.subject)
        # OpenID Connect Core §4 (third-party initiated login): iss tells the client where to go.
        query = urlencode({"iss": self.settings.base_url, "idp": idp.slug})
        uri = client.login_start_uri
        return uri + ("&" if "?" in uri else "?") + query

    def _warn_if_sha1(self, idp: IdentityProvider, verified: saml_response.VerifiedAssertion) -> None:
        if verified.uses_sha1:
            log.warning("insecure: IdP %s signed with SHA-1, accepted under its exception until %s",
                        idp.slug, idp.settings.insecure_allow_sha1_until)

    # --- 3. /token ---------------------------------------------------------------------------

    def exchange_code(self, client: ClientConfig, form: dict[str, str]) -> TokenSet:
        try:
            return self._exchange_code(client, form)
        except TokenError as error:
            self._audit_refusal("token", error, client_id=client.client_id)
            raise

    def _exchange_code(self, client: ClientConfig, form: dict[str, str]) -> TokenSet:
        code = form.get("code", "")
        if not code:
            raise TokenError("invalid_request", "code is required.")
        now = self.clock.now()
        with self.db.connection() as connection:
            row = connection.execute(_GET_CODE, {"h": secret_hash(code)}).first()
            if row is None:
                raise TokenError("invalid_grant", "The authorization code is not valid.",
                                 code="code_unknown")
            replayed = row.family_id if row.used_at is not None else None
        if replayed is not None:
            # RFC 6749 §4.1.2: a code used twice revokes what it produced.
            with self.db.transaction() as session:
                refresh_tokens.revoke_family(session, replayed, now=now, reason="code_reuse")
            raise TokenError("invalid_grant", "The authorization code has already been used.",
                             code="code_reused")
        if row.client_id != client.client_id:
            raise TokenError("invalid_grant", "The authorization code was issued to another client.",
                             code="code_client_mismatch")
        if row.expires_at <= now:
            raise TokenError("invalid_grant", "The authorization code has expired.",
                             code="code_expired")
        if form.get("redirect_uri") != row.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri does not match the authorization request.",
                             code="redirect_uri_mismatch")
        if row.code_challenge is not None:
            verifier = check_code_verifier(form.get("code_verifier"))
            if not constant_time_equal(pkce_s256(verifier), row.code_challenge):
                raise TokenError("invalid_grant", "code_verifier does not match the code_challenge.",
                                 code="pkce_mismatch")
        elif form.get("code_verifier"):
            raise TokenError("invalid_grant", "code_verifier sent but no code_challenge was.",
                             code="pkce_mismatch")

        key = self.keys.signing_key(client.token_signing_alg)  # read before the write transaction
        family_end = now + client.refresh_token_ttl_seconds
        if row.session_not_on_or_after is not None:
            family_end = min(family_end, row.session_not_on_or_after)
        with self.db.connection() as connection:
            used = connection.execute(_USE_CODE, {"h": row.code_hash, "now": now})
            if used.rowcount != 1:
                raise TokenError("invalid_grant", "The authorization code has already been used.",
                                 code="code_reused")
            rotation = refresh_tokens.start_family(
                connection, now=now, client_id=client.client_id, subject=row.subject,
                idp_slug=row.idp_slug, claims_json=row.claims_json, scope=row.scope,
                auth_time=row.auth_time, session_index=row.session_index, name_id=row.name_id,
                expires_at=family_end,
            )
            connection.execute(_LINK_CODE, {"h": row.code_hash, "family": rotation.family.id})
            tokens = self._mint(client, row.claims_json, row.auth_time, row.scope, key, "code",
                                rotation.refresh_token, rotation.family.id, nonce=row.nonce)
            audit.record(connection, at=now, event="token", outcome="success",
                         idp_slug=row.idp_slug, client_id=client.client_id, subject=row.subject,
                         detail={"grant": "authorization_code"})
        return tokens

    def refresh(self, client: ClientConfig, token: str, scope: str | None) -> TokenSet:
        try:
            return self._refresh(client, token, scope)
        except refresh_tokens.ReuseDetected as reuse:
            with self.db.transaction() as session:
                refresh_tokens.revoke_family(session, reuse.family_id, now=self.clock.now(),
                                             reason="reuse_detected")
            self._audit_refusal("refresh", reuse, client_id=client.client_id)
            raise
        except TokenError as error:
            self._audit_refusal("refresh", error, client_id=client.client_id)
            raise

    def _refresh(self, client: ClientConfig, token: str, scope: str | None) -> TokenSet:
        if not token:
            raise TokenError("invalid_request", "refresh_token is required.")
        now = self.clock.now()
        key = self.keys.signing_key(client.token_signing_alg)  # read before the write transaction
        with self.db.connection() as connection:
            rotation = refresh_tokens.rotate(
                connection, token=token, client_id=client.client_id, now=now,
                policy=RefreshPolicy(client.refresh_idle_timeout_seconds,
                                     client.refresh_reuse_interval_seconds),
                successor_key=self.successor_key)
            family = rotation.family
            granted = family.scope.split()
            if scope is not None:
                # RFC 6749 §6: a refresh may narrow the scope, never widen it.
                requested = scope.split()
                if any(s not in granted for s in requested):
                    raise TokenError("invalid_scope", "The requested scope exceeds the grant.")
                granted = requested
            return self._mint(client, family.claims_json, family.auth_time, " ".join(granted),
                              key, "refresh", rotation.refresh_token, family.id)

    def revoke(self, client: ClientConfig, token: str) -> None:
        """RFC 7009: revoke the family of a refresh token; unknown tokens are not an error."""
        now = self.clock.now()
        with self.db.transaction() as session:
            family_id = refresh_tokens.family_of(session, token)
            if family_id is None:
                return
            family = session.get(RefreshFamily, family_id)
            if family is None or family.client_id != client.client_id:
                return
            if refresh_tokens.revoke_family(session, family_id, now=now, reason="revoked"):
                audit.record(session, at=now, event="revoke", outcome="success",
                             client_id=client.client_id, subject=family.subject,
                             idp_slug=family.idp_slug)

    def refresh_token_client(self, token: str) -> str | None:
        """The client a refresh token was issued to, or None: only to tell whose login a cookie
        holds, never as a check of the token itself."""
        with self.db.transaction() as session:
            family_id = refresh_tokens.family_of(session, token)
            family = session.get(RefreshFamily, family_id) if family_id else None
            return family.client_id if family is not None else None

    def logout(self, client: ClientConfig, token: str, *, idp_logout: bool) -> str | None:
        """Revoke the login of ``token``; when asked, return the URL that continues to the IdP's
        Single Logout: our (signed) LogoutRequest on the HTTP-Redirect binding, or, for an IdP
        whose Single Logout takes HTTP-POST only, our page that posts it (``logout_form``)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            family_id = refresh_tokens.family_of(session, token) if token else None
            family = session.get(RefreshFamily, family_id) if family_id else None
            if family is None or family.client_id != client.client_id:
                return None  # nothing of this client's to end; logout is idempotent
            refresh_tokens.revoke_family(session, family.id, now=now, reason="logout")
            audit.record(session, at=now, event="logout", outcome="success",
                         client_id=client.client_id, subject=family.subject,
                         idp_slug=family.idp_slug)
            name_id, session_index, slug = family.name_id, family.session_index, family.idp_slug
        idp = self.idps.get(slug)
        if not idp_logout or idp is None or not name_id:
            return None
        endpoint = idp.logout_endpoint()
        if endpoint is None:
            return None
        if endpoint[0] == ns.BINDING_POST:
            # A client can only send the browser to a URL: the form is posted from our page, and
            # the link to it is sealed, so that it names no one but this login's person.
            ticket = seal(self.logout_ticket_key, {"idp": slug, "name_id": name_id,
                                                   "session_index": session_index,
                                                   "exp": int(now) + LOGOUT_TICKET_SECONDS})
            return f"{self.settings.base_url}/saml/{slug}/logout?" + urlencode({"ticket": ticket})
        message = logout_request(idp, self.service_provider(slug), name_id=name_id,
                                 session_index=session_index, now=now,
                                 signing_key=self.sp_keys.signing_key,
                                 message_id=self._logout_request_id(slug))
        return message.url if message is not None else None

    def logout_form(self, slug: str, ticket: str) -> OutgoingMessage:
        """Our LogoutRequest for the login a ``logout`` link was made for, on the HTTP-POST
        binding (built and signed now)."""
        payload = unseal(self.logout_ticket_key, ticket)
        now = self.clock.now()
        expires = payload.get("exp") if payload else None
        if (payload is None or payload.get("idp") != slug or not isinstance(expires, int)
                or expires <= now or not isinstance(payload.get("name_id"), str)):
            raise BridgeError(code="logout_ticket_invalid",
                              public_detail="This sign-out link is not valid or has expired.")
        idp = self.idps.get(slug)
        if idp is None:
            raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
        index = payload.get("session_index")
        message = logout_request(idp, self.service_provider(slug), name_id=str(payload["name_id"]),
                                 session_index=index if isinstance(index, str) else None,
                                 now=now, signing_key=self.sp_keys.signing_key,
                                 message_id=self._logout_request_id(slug))
        if message is None:
            raise BridgeError(code="logout_ticket_invalid",
                              public_detail="This identity provider has no Single Logout service.")
        return message

    def exchange_token(self, client: ClientConfig, form: dict[str, str]) -> TokenSet:
        """RFC 8693 token exchange: a service presents an access token meant for it and receives
        one for another audience it is allowed to call, with the same or a narrower scope and
        never a longer life (the gateway "token re-issuance" pattern)."""
        try:
            return self._exchange_token(client, form)
        except TokenError as error:
            self._audit_refusal("token_exchange", error, client_id=client.client_id)
            raise

    def _exchange_token(self, client: ClientConfig, form: dict[str, str]) -> TokenSet:
        if client.public:
            raise TokenError("unauthorized_client", "Only confidential clients exchange tokens.",
                             code="exchange_not_allowed")
        if form.get("subject_token_type") != ACCESS_TOKEN_URN:
            raise TokenError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_URN}.")
        if form.get("requested_token_type") not in (None, ACCESS_TOKEN_URN):
            raise TokenError("invalid_request", "Only access tokens can be requested.")
        if form.get("actor_token"):
            raise TokenError("invalid_request", "Delegation (actor_token) is not supported.")
        audience = form.get("audience", "")
        if audience not in client.token_exchange_audiences:
            raise TokenError("invalid_target", "This client may not obtain tokens for that audience.",
                             code="exchange_audience_refused", log_detail={"audience": audience[:200]})
        # The presented token must have been meant for the exchanging service itself.
        subject = signing.verify(form.get("subject_token", ""), self.keys,
                                 issuer=self.settings.base_url, audience=client.audience,
                                 typ=ACCESS_TOKEN_TYPE)
        # RFC 8693 §2.2.2: a subject token whose login has ended is no longer valid; what it is
        # exchanged for belongs to the same login, and ends with it.
        login = login_of(subject.get("jti"))
        if login is not None and not self._login_live(login):
            raise TokenError("invalid_grant", "The login behind the subject token has ended.",
                             code="token_invalid", log_detail={"why": "login ended"})
        granted = str(subject.get("scope", "")).split()
        requested = form["scope"].split() if form.get("scope") is not None else granted
        if any(s not in granted for s in requested):
            raise TokenError("invalid_scope", "The requested scope exceeds the subject token's.")
        now = int(self.clock.now())
        ttl = min(self.settings.access_token_ttl_seconds, int(subject["exp"]) - now)
        if ttl <= 0:
            raise TokenError("invalid_grant", "The subject token has expired.", code="token_invalid")
        # The subject token's claims, cut again to the (possibly narrower) scope.
        claims = token_claims({k: v for k, v in subject.items() if k not in _REGISTERED},
                              " ".join(requested),
                              GroupBudget(self.settings.groups_max_count,
                                          self.settings.groups_max_bytes))
        access_token = issue_access_token(
            claims, issuer=self.settings.base_url, audience=audience, client_id=client.client_id,
            auth_time=int(subject["auth_time"]), scope=" ".join(requested), ttl=ttl,
            key=self.keys.signing_key(client.token_signing_alg), clock=self.clock, login=login)
        with self.db.transaction() as session:
            audit.record(session, at=self.clock.now(), event="token_exchange", outcome="success",
                         client_id=client.client_id, subject=str(subject["sub"]),
                         detail={"from": subject["aud"], "to": audience})
        metrics.token_issued(client.client_id, "token_exchange")
        return TokenSet(access_token, ttl, None, " ".join(requested), client,
                        issued_token_type=ACCESS_TOKEN_URN)

    def idp_logout(self, slug: str, query_string: str, *, error_id: str
                   ) -> OutgoingMessage | None:
        """A LogoutRequest from the IdP: revoke every login of that SAML session; return our
        LogoutResponse to the IdP (None when it has no Single Logout service to send it to)."""
        idp = self.idps.get(slug)
        try:
            if idp is None:
                raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
            idp.require_current_metadata(self.clock.now())
            request = verify_logout_request(query_string, idp=idp,
                                            slo_url=self.settings.slo_url(slug), clock=self.clock)
        except BridgeError as error:
            self._audit_refusal("idp_logout", error, error_id=error_id, idp_slug=slug)
            raise
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                # Once only, on every node: the request enters the replay cache first, so a
                # second use fails here (IntegrityError) and ends nothing. The assertion cache is
                # the right store: SAML Core §1.3.4 makes an issuer's IDs unique across all its
                # messages, so an IdP's LogoutRequest ID never equals one of its assertion IDs.
                session.execute(_INSERT_ASSERTION, {"idp_entity_id": idp.metadata.entity_id,
                                                    "assertion_id": request.id,
                                                    "expires_at": request.replay_expires_at})
                which = (RefreshFamily.session_index.in_(request.session_indexes)
                         if request.session_indexes else RefreshFamily.name_id == request.name_id)
                ended = refresh_tokens.revoke_families(session, RefreshFamily.idp_slug == slug,
                                                       which, now=now, reason="idp_logout")
                spend_codes(session, AuthorizationCode.idp_slug == slug,
                            AuthorizationCode.session_index.in_(request.session_indexes)
                            if request.session_indexes
                            else AuthorizationCode.name_id == request.name_id, now=now)
                audit.record(session, at=now, event="idp_logout", outcome="success",
                             idp_slug=slug, detail={"families": ended,
                                                    "session_indexes": len(request.session_indexes)})
        except sa_exc.IntegrityError:
            replay = SamlRejected("saml_replay", "This logout request has already been used.",
                                  log_detail={"request_id": request.id})
            self._audit_refusal("idp_logout", replay, error_id=error_id, idp_slug=slug)
            raise replay from None
        return logout_response(idp, self.service_provider(slug), in_response_to=request.id,
                               now=self.clock.now(), signing_key=self.sp_keys.signing_key)

    def logout_response_received(self, slug: str, query_string: str, *, error_id: str) -> bool:
        """The IdP's LogoutResponse to our LogoutRequest: verified and audited; True when the IdP
        says its session ended too (the login here ended when our request was made)."""
        idp = self.idps.get(slug)
        try:
            if idp is None:
                raise IdpUnknown("idp_unknown", "No IdP is configured at this address.")
            idp.require_current_metadata(self.clock.now())
            response = verify_logout_response(query_string, idp=idp,
                                              slo_url=self.settings.slo_url(slug), clock=self.clock)
            if not self._is_our_logout_request(slug, response.in_response_to):
                raise SamlRejected("saml_request_unknown",
                                   "The logout response answers no logout request of ours.",
                                   log_detail={"in_response_to":
                                               (response.in_response_to or "")[:128]})
            # Once only, on every node, as the IdP's LogoutRequests (idp_logout).
            with self.db.transaction() as session:
                session.execute(_INSERT_ASSERTION, {"idp_entity_id": idp.metadata.entity_id,
                                                    "assertion_id": response.id,
                                                    "expires_at": response.replay_expires_at})
                audit.record(session, at=self.clock.now(), event="logout_response",
                             outcome="success", idp_slug=slug,
                             detail={"status": response.status[:200]})
        except sa_exc.IntegrityError:
            replay = SamlRejected("saml_replay", "This logout response has already been used.",
                                  log_detail={"response_id": response.id[:128]})
            self._audit_refusal("logout_response", replay, error_id=error_id, idp_slug=slug)
            raise replay from None
        except BridgeError as error:
            self._audit_refusal("logout_response", error, error_id=error_id, idp_slug=slug)
            raise
        return response.status == ns.STATUS_SUCCESS

    def _logout_request_id(self, slug: str) -> str:
        """An ID for our LogoutRequest to IdP ``slug`` that only we can make (SAML Core §1.3.4:
        random, and here also keyed), so its answer's InResponseTo shows it answers one of ours,
        with no record kept of every request sent."""
        nonce = secrets.token_hex(12)
        return f"_{nonce}{self._logout_request_mac(slug, nonce)}"

    def _logout_request_mac(self, slug: str, nonce: str) -> str:
        return hmac.new(self.logout_request_key, f"{slug}\x00{nonce}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def _is_our_logout_request(self, slug: str, request_id: str | None) -> bool:
        if not request_id or len(request_id) != 57 or not request_id.startswith("_"):
            return False
        nonce, mac = request_id[1:25], request_id[25:]
        return constant_time_equal(self._logout_request_mac(slug, nonce), mac)

    def saml_bearer_grant(self, client: ClientConfig, form: dict[str, str]) -> TokenSet:
        """RFC 7522: an access token (no refresh token) for a SAML assertion the client holds."""
        try:
            return self._saml_bearer_grant(client, form)
        except BridgeError as error:
            self._audit_refusal("saml_bearer", error, client_id=client.client_id)
            if isinstance(error, SamlRejected):
                # RFC 7522 §3.1: an invalid assertion is an invalid_grant; the precise code is in
                # the audit event and the log.
                raise TokenError("invalid_grant", error.public_detail, code=error.code,
                                 log_detail=error.log_detail) from None
            raise

    def _saml_bearer_grant(self, client: ClientConfig, form: dict[str, str]) -> TokenSet:
        if not client.allow_saml_bearer:
            raise TokenError("unauthorized_client", "This client may not use SAML assertions.",
                             code="saml_bearer_not_allowed")
        requested = (form.get("scope") or "").split()
        if any(s not in client.scopes for s in requested):
            raise TokenError("invalid_scope", "Scopes not allowed for this client.")
        verified = verify_bearer_assertion(
            form.get("assertion", ""), idps=self.idps, sp_entity_id=self.settings.sp_entity_id,
            token_url=f"{self.settings.base_url}/token", clock=self.clock)
        idp = self.idps[verified.idp_slug]
        idp.require_current_metadata(self.clock.now())
        identity = to_identity(verified, idp)
        claims = build_claims(client.claims_version, identity, idp.settings.mapping)
        scope = " ".join(dict.fromkeys(requested))
        key = self.keys.signing_key(client.token_signing_alg)
        self._use_unsolicited(verified, event="saml_bearer", outcome="success",
                              client_id=client.client_id, subject=identity.subject)
        budget = GroupBudget(self.settings.groups_max_count, self.settings.groups_max_bytes)
        ttl = self.settings.access_token_ttl_seconds
        access_token = issue_access_token(
            token_claims(claims, scope, budget), issuer=self.settings.base_url,
            audience=client.audience, client_id=client.client_id, auth_time=identity.auth_time,
            scope=scope, ttl=ttl, key=key, clock=self.clock)
        metrics.token_issued(client.client_id, "saml2_bearer")
        return TokenSet(access_token, ttl, None, scope, client)

    def revoke_all(self, *, subject: str | None = None, idp_slug: str | None = None,
                   actor: str, reason: str = "admin") -> int:
        """Revoke every live login of a subject (an offboarded employee) or of an IdP (a
        compromised one); audited with who did it. Returns how many logins were ended."""
        if not subject and not idp_slug:
            raise ValueError("name a subject or an IdP")
        now = self.clock.now()
        conditions = [RefreshFamily.expires_at > now]
        codes = []
        if subject:
            conditions.append(RefreshFamily.subject == subject)
            codes.append(AuthorizationCode.subject == subject)
        if idp_slug:
            conditions.append(RefreshFamily.idp_slug == idp_slug)
            codes.append(AuthorizationCode.idp_slug == idp_slug)
        with self.db.transaction() as session:
            ended = refresh_tokens.revoke_families(session, *conditions, now=now, reason=reason)
            spend_codes(session, *codes, now=now)
            audit.record(session, at=now, event="revoke_all", outcome="success",
                         subject=subject, idp_slug=idp_slug,
                         detail={"actor": actor, "families": ended, "reason": reason})
        return ended

    def introspect(self, caller: ClientConfig, token: str) -> dict[str, object]:
        """RFC 7662: is ``token`` active, and what is it? Only for confidential callers, and only
        about tokens issued to them or meant for their audience."""
        inactive: dict[str, object] = {"active": False}
        now = self.clock.now()
        if token.count(".") == 2:
            try:
                # Any of our access tokens verifies here; who may see it is decided below.
                claims = signing.verify(token, self.keys, issuer=self.settings.base_url,
                                        audience=None, typ=ACCESS_TOKEN_TYPE)
            except TokenError:
                return inactive
            if caller.client_id != claims.get("client_id") and caller.audience != claims["aud"]:
                return inactive
            # A valid signature is not enough: the login the token was issued under must still
            # be live (not logged out, revoked or expired), as /userinfo requires.
            login = login_of(claims.get("jti"))
            if login is not None and not self._login_live(login):
                return inactive
            return {"active": True, "token_type": "Bearer", "client_id": claims["client_id"],
                    "sub": claims["sub"], "aud": claims["aud"], "iss": claims["iss"],
                    "exp": claims["exp"], "iat": claims["iat"], "jti": claims.get("jti"),
                    "scope": claims.get("scope", "")}
        with self.db.transaction() as session:
            found = session.execute(
                select(RefreshToken, RefreshFamily).join(RefreshFamily)
                .where(RefreshToken.token_hash == secret_hash(token))).first()
        if found is None:
            return inactive
        row, family = found
        if (family.client_id != caller.client_id or row.used_at is not None
                or family.revoked_at is not None or family.expires_at <= now
                or self._idle(family)):
            return inactive
        return {"active": True, "token_type": "refresh_token", "client_id": family.client_id,
                "sub": family.subject, "exp": int(family.expires_at), "scope": family.scope,
                "iat": int(row.created_at)}

    def _live_login_query(self) -> Select[RefreshFamily]:
        """Refresh families that are still a live login: not revoked (logout, IdP logout,
        /revoke, `bridge revoke`, reuse) and not past their absolute end."""
        return select(RefreshFamily).where(RefreshFamily.revoked_at.is_(None),
                                           RefreshFamily.expires_at > self.clock.now())

    def _login_live(self, login: str) -> bool:
        with self.db.transaction() as session:
            family = session.scalars(
                self._live_login_query().where(RefreshFamily.id == login)).first()
            return family is not None and not self._idle(family)

    def _idle(self, family: RefreshFamily) -> bool:
        # The client's idle timeout ends a login as surely as a logout (RFC 9700 §4.14.2).
        client = self.settings.client(family.client_id)
        idle = client.refresh_idle_timeout_seconds if client is not None else 0
        last = family.last_used_at or family.created_at
        return bool(idle) and self.clock.now() - last > idle

    def _mint(self, client: ClientConfig, claims_json: str, auth_time: int, scope: str,
              key: ActiveKey, grant: str, refresh_token: str, login: str, *,
              nonce: str | None = None) -> TokenSet:
        """The access token (cut to scope and budget), and an ID token when openid was granted."""
        full = json.loads(claims_json)
        ttl = self.settings.access_token_ttl_seconds
        budget = GroupBudget(self.settings.groups_max_count, self.settings.groups_max_bytes)
        access_token = issue_access_token(
            token_claims(full, scope, budget),
            issuer=self.settings.base_url,
            audience=client.audience,
            client_id=client.client_id,
            auth_time=auth_time,
            scope=scope,
            ttl=ttl,
            key=key,
            clock=self.clock,
            login=login,
        )
        id_token = None
        if "openid" in scope.split():
            id_token = issue_id_token(
                id_token_claims(full, scope), issuer=self.settings.base_url,
                client_id=client.client_id, auth_time=auth_time, nonce=nonce,
                access_token=access_token, ttl=ttl, key=key, clock=self.clock)
        metrics.token_issued(client.client_id, grant)
        return TokenSet(access_token, ttl, refresh_token, scope, client, id_token,
                        self.settings.claims_sunset.get(int(full["ver"])))

    # --- /userinfo -----------------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, object]:
        """OIDC Core §5.3: the claims of a live login, for one of its access tokens."""
        unverified = signing.peek_client_id(access_token)
        client = self.settings.client(unverified or "")
        if client is None:
            raise TokenError("invalid_token", "The access token is not valid.", code="token_invalid")
        claims = signing.verify(access_token, self.keys, issuer=self.settings.base_url,
                                audience=client.audience, typ=ACCESS_TOKEN_TYPE)
        if claims.get("client_id") != client.client_id:
            raise TokenError("invalid_token", "The access token is not valid.", code="token_invalid")
        query = self._live_login_query().where(RefreshFamily.subject == claims["sub"],
                                               RefreshFamily.client_id == client.client_id)
        login = login_of(claims.get("jti"))
        if login is not None:
            # The token's own login, not any other live login of the same person.
            query = query.where(RefreshFamily.id == login)
        else:
            # Tokens issued before jti named the login: the person's latest live login.
            query = query.order_by(RefreshFamily.created_at.desc()).limit(1)
        with self.db.transaction() as session:
            family = session.scalars(query).first()
            if family is not None and self._idle(family):
                family = None
        if family is None:
            raise TokenError("invalid_token", "The login behind this token has ended.",
                             code="token_invalid")
        return userinfo_claims(json.loads(family.claims_json), str(claims.get("scope", "")))

    # --- audit of refusals ---------------------------------------------------------------------

    def _audit_refusal(self, event: str, error: BridgeError, *, error_id: str | None = None,
                       idp_slug: str | None = None, client_id: str | None = None) -> None:
        try:
            with self.db.transaction() as session:
                audit.record(session, at=self.clock.now(), event=event, outcome="refused",
                             code=error.code, idp_slug=idp_slug, client_id=client_id,
                             error_id=error_id or secrets.token_hex(6), detail=error.log_detail)
        except BridgeError:
            pass  # the database is down: the refusal still stands, and is logged by the caller

    def audit_events(self, limit: int = 50) -> list[dict[str, object]]:
        with self.db.transaction() as session:
            rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
            return [{"event": r.event, "outcome": r.outcome, "code": r.code, "idp": r.idp_slug,
                     "client": r.client_id, "detail": json.loads(r.detail_json)} for r in rows]


def check_idp_initiated_targets(settings: Settings, idps: Mapping[str, IdentityProvider]) -> None:
    problems = []
    for slug, idp in sorted(idps.items()):
        for client_id in idp.settings.idp_initiated_clients:
            client = settings.client(client_id)
            if client is None:
                problems.append(f"{settings.idp_metadata_dir}/{slug}.toml: idp_initiated_clients: "
                                f"{client_id!r} is not a configured client")
            elif not client.login_start_uri:
                problems.append(f"clients[{client_id}].login_start_uri: required, because IdP "
                                f"{slug} may start logins for this client")
    if problems:
        raise ConfigError(problems)
