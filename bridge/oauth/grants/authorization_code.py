"""RFC 6749 §4.1.3 (and RFC 7636 PKCE): an authorization code for the tokens of a new login."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from bridge import audit, metrics
from bridge.audit import refusals_audited
from bridge.config import ClientConfig
from bridge.errors import GrantOfDeprovisionedPerson, TokenError
from bridge.oauth.codes import Exchange, exchange_in_one_statement, find_code, redeem_code
from bridge.oauth.requests import check_code_verifier
from bridge.oauth.tokens import TokenSet, mint
from bridge.tokens import refresh as refresh_tokens
from bridge.tokens.secrets_util import constant_time_equal, new_secret, pkce_s256, secret_hash

if TYPE_CHECKING:
    from bridge.services import Services


class AuthorizationCodeGrant:
    grant_type = "authorization_code"

    def __init__(self, services: Services) -> None:
        self.services = services

    def _reused(self, family_id: str | None, now: float) -> NoReturn:
        """RFC 6749 §4.1.2: a code used twice revokes what it produced."""
        if family_id is not None:
            with self.services.db.transaction() as session:
                refresh_tokens.revoke_family(session, family_id, now=now, reason="code_reuse")
        raise TokenError("invalid_grant", "The authorization code has already been used.",
                         code="code_reused")

    def _used(self, row: Any, now: float) -> NoReturn:
        """A code already used: by an exchange, which this second use ends, or by the end of its
        login (a logout, revocation or deprovisioning spent it, and it started nothing). Checked
        before the code is known to be the caller's: the answer says nothing of its person."""
        if row.family_id is None:
            raise TokenError("invalid_grant", "The login of this authorization code has ended.",
                             code="code_spent")
        self._reused(row.family_id, now)

    def _not_redeemed(self, code_hash: str, now: float) -> NoReturn:
        """The code passed the checks but was no longer usable when written: used by another
        request since our read (the same reuse, whatever the timing: its exchange has committed
        by now, as ours waited for its lock, so its login is found), expired, or its person
        deprovisioned meanwhile."""
        with self.services.db.lookup() as connection:
            row = find_code(connection, code_hash)
        if row is None:  # purged meanwhile, an hour past its expiry
            raise _expired()
        if row.used_at is not None:
            self._used(row, now)
        if row.person_deprovisioned:
            raise GrantOfDeprovisionedPerson(row.idp_slug)
        if row.expires_at <= now:
            raise _expired()
        # Deprovisioned when the write ran, reinstated since (the code stays unused).
        raise GrantOfDeprovisionedPerson(row.idp_slug)

    def _exchange_at_once(self, client: ClientConfig, form: dict[str, str], code_hash: str,
                          now: float, dpop_jkt: str | None) -> TokenSet | None:
        """PostgreSQL: the exchange in one statement (one round trip) when the code passes every
        check below; None, with nothing done, when it does not, and ``issue`` goes through the
        checks one by one to refuse it with the right error (or, if only this shortcut turned
        the code down, to exchange it)."""
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is None or "\x00" in redirect_uri:
            return None
        verifier, challenge = form.get("code_verifier"), None
        if verifier:
            try:
                challenge = pkce_s256(check_code_verifier(verifier))
            except TokenError:
                return None
        key = self.services.keys.signing_key(client.token_signing_alg)
        refresh_token = new_secret()
        now = self.services.clock.now()  # for the write, as in ``issue``
        exchange = Exchange(
            code_hash=code_hash, client_id=client.client_id, redirect_uri=redirect_uri,
            challenge=challenge, proof_jkt=dpop_jkt, family_id=refresh_tokens.new_family_id(),
            family_expires_at=now + client.refresh_token_ttl_seconds,
            family_dpop_jkt=dpop_jkt if client.public else None,  # as issue() binds it
            token_hash=secret_hash(refresh_token))
        success = audit.event_row(at=now, event="token", outcome="success",
                                  client_id=client.client_id,
                                  detail={"grant": "authorization_code"})
        with self.services.db.single_statement() as connection:
            row = exchange_in_one_statement(connection, exchange, now, success)
        if row is None:
            return None
        metrics.observe_event("token", "success", None, row.idp_slug, client.client_id)
        return mint(self.services, client, row.claims_json, row.auth_time, row.scope, key,
                    "code", refresh_token, exchange.family_id, nonce=row.nonce,
                    dpop_jkt=dpop_jkt)

    @refusals_audited("token", refusals=TokenError)
    def issue(self, client: ClientConfig, form: dict[str, str], *,
              dpop_jkt: str | None = None) -> TokenSet:
        db = self.services.db
        code = form.get("code", "")
        if not code:
            raise TokenError("invalid_request", "code is required.")
        now = self.services.clock.now()
        if db.dialect == "postgresql":
            tokens = self._exchange_at_once(client, form, secret_hash(code), now, dpop_jkt)
            if tokens is not None:
                return tokens
        with db.lookup() as connection:
            row = find_code(connection, secret_hash(code))
            if row is None:
                raise TokenError("invalid_grant", "The authorization code is not valid.",
                                 code="code_unknown")
        if row.used_at is not None:
            self._used(row, now)
        if row.client_id != client.client_id:
            raise TokenError("invalid_grant", "The authorization code was issued to another client.",
                             code="code_client_mismatch")
        if row.expires_at <= now:
            raise _expired()
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
        if row.dpop_jkt is not None and row.dpop_jkt != dpop_jkt:
            # RFC 9449 §10: the code was asked for with dpop_jkt; only that key exchanges it.
            raise TokenError("invalid_grant", "The authorization code is bound to another DPoP "
                             "key.", code="code_key_mismatch",
                             log_detail={"proof": "none" if dpop_jkt is None else "another key"})
        if row.person_deprovisioned:
            raise GrantOfDeprovisionedPerson(row.idp_slug)

        # Read before the write transaction.
        key = self.services.keys.signing_key(client.token_signing_alg)
        # The write checks the code's expiry again, by the clock read now: the checks above may
        # be long past (a stalled request).
        now = self.services.clock.now()
        family_end = now + client.refresh_token_ttl_seconds
        if row.session_not_on_or_after is not None:
            family_end = min(family_end, row.session_not_on_or_after)
        family = refresh_tokens.new_family(
            now=now, client_id=client.client_id, subject=row.subject, idp_slug=row.idp_slug,
            claims_json=row.claims_json, scope=row.scope, auth_time=row.auth_time,
            session_index=row.session_index, name_id=row.name_id, expires_at=family_end,
            # RFC 9449 §5: a public client's refresh tokens are bound to its key; a confidential
            # client's are bound to its credentials already.
            dpop_jkt=dpop_jkt if client.public else None)
        success = audit.event_row(at=now, event="token", outcome="success",
                                  idp_slug=row.idp_slug, client_id=client.client_id,
                                  subject=row.subject, detail={"grant": "authorization_code"})
        # One statement on PostgreSQL: the code used, the login started and audited, or nothing.
        with db.single_statement() as connection:
            redeemed = redeem_code(connection, row.code_hash, now, family, success)
        if not redeemed:
            self._not_redeemed(row.code_hash, now)
        metrics.observe_event("token", "success", None, row.idp_slug, client.client_id)
        rotation = family.rotation
        return mint(self.services, client, row.claims_json, row.auth_time, row.scope, key,
                    "code", rotation.refresh_token, rotation.family.id, nonce=row.nonce,
                    dpop_jkt=dpop_jkt)


def _expired() -> TokenError:
    return TokenError("invalid_grant", "The authorization code has expired.", code="code_expired")
