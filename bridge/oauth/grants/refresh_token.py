"""RFC 6749 §6: a refresh token for the next tokens of its login, rotated (tokens/refresh.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.audit import refusals_audited
from bridge.config import ClientConfig
from bridge.errors import TokenError
from bridge.oauth.tokens import TokenSet, mint
from bridge.tokens import refresh as refresh_tokens
from bridge.tokens.keys import ActiveKey
from bridge.tokens.refresh import RefreshPolicy

if TYPE_CHECKING:
    from bridge.services import Services


class RefreshTokenGrant:
    grant_type = "refresh_token"

    def __init__(self, services: Services) -> None:
        self.services = services

    @refusals_audited("refresh", refusals=TokenError)
    def issue(self, client: ClientConfig, form: dict[str, str], *,
              dpop_jkt: str | None = None) -> TokenSet:
        try:
            return self._rotate(client, form.get("refresh_token", ""), form.get("scope"),
                                dpop_jkt)
        except refresh_tokens.ReuseDetected as reuse:
            # RFC 9700 §4.14.2: a used token that comes back ends its whole login.
            with self.services.db.transaction() as session:
                refresh_tokens.revoke_family(session, reuse.family_id,
                                             now=self.services.clock.now(),
                                             reason="reuse_detected")
            raise

    def _rotate(self, client: ClientConfig, token: str, scope: str | None,
                dpop_jkt: str | None) -> TokenSet:
        if not token:
            raise TokenError("invalid_request", "refresh_token is required.")
        now = self.services.clock.now()
        # Read before the write transaction.
        key = self.services.keys.signing_key(client.token_signing_alg)
        db = self.services.db
        policy = RefreshPolicy(client.refresh_idle_timeout_seconds,
                               client.refresh_reuse_interval_seconds)
        successor_key = self.services.secrets.refresh_successor
        # The common case, a plain rotation without a narrower scope, is one statement that
        # commits on its own (one round trip on PostgreSQL). A scope to check must be able to
        # undo the rotation, so it goes through the transaction below, as does every refusal
        # and retry.
        if scope is None and refresh_tokens.rotates_in_one_statement(db.dialect):
            with db.single_statement() as connection:
                rotation = refresh_tokens.rotate_at_once(
                    connection, token=token, client_id=client.client_id, now=now,
                    policy=policy, successor_key=successor_key, dpop_jkt=dpop_jkt)
            if rotation is not None:
                return self._mint(client, rotation, None, key, dpop_jkt)
        with db.driver_transaction() as connection:
            rotation = refresh_tokens.rotate(
                connection, token=token, client_id=client.client_id, now=now, policy=policy,
                successor_key=successor_key, dpop_jkt=dpop_jkt)
            return self._mint(client, rotation, scope, key, dpop_jkt)

    def _mint(self, client: ClientConfig, rotation: refresh_tokens.Rotation, scope: str | None,
              key: ActiveKey, dpop_jkt: str | None) -> TokenSet:
        family = rotation.family
        granted = family.scope.split()
        if scope is not None:
            # RFC 6749 §6: a refresh may narrow the scope, never widen it.
            requested = scope.split()
            if any(s not in granted for s in requested):
                raise TokenError("invalid_scope", "The requested scope exceeds the grant.")
            granted = requested
        # OIDC Core §12.2: a refresh answer may omit the ID token. It describes an authentication,
        # and a refresh is none: the client keeps the one its login gave it (decision 0026).
        return mint(self.services, client, family.claims_json, family.auth_time,
                    " ".join(granted), key, "refresh", rotation.refresh_token, family.id,
                    with_id_token=False, dpop_jkt=dpop_jkt)
