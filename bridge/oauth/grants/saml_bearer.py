"""RFC 7522: an access token (no refresh token) for a SAML assertion the client holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge import metrics
from bridge.audit import refusals_audited
from bridge.claims import build_claims, token_claims
from bridge.config import ClientConfig
from bridge.errors import SamlRejected, TokenError
from bridge.oauth.deprovisioned import refuse_if_deprovisioned, refuse_if_person_deprovisioned
from bridge.oauth.tokens import TokenSet, group_budget
from bridge.replay import use_unsolicited
from bridge.saml.bearer import verify_bearer_assertion
from bridge.saml.subject import to_identity
from bridge.saml.verified import ImplausibleAuthnInstant
from bridge.store.direct import Runner
from bridge.tokens.access import THROUGH_API, THROUGH_FILE, issue_access_token

if TYPE_CHECKING:
    from bridge.idps.settings import IdentityProvider
    from bridge.services import Services


class SamlBearerGrant:
    grant_type = "urn:ietf:params:oauth:grant-type:saml2-bearer"

    def __init__(self, services: Services) -> None:
        self.services = services

    def issue(self, client: ClientConfig, form: dict[str, str], *,
              dpop_jkt: str | None = None) -> TokenSet:
        try:
            return self._issue(client, form, dpop_jkt)
        except SamlRejected as error:
            # RFC 7522 §3.1: an invalid assertion is an invalid_grant; the precise code is in the
            # audit event and the log.
            raise TokenError("invalid_grant", error.public_detail, code=error.code,
                             log_detail=error.log_detail) from None

    @refusals_audited("saml_bearer")
    def _issue(self, client: ClientConfig, form: dict[str, str],
               dpop_jkt: str | None) -> TokenSet:
        settings, clock, idps = self.services.settings, self.services.clock, self.services.idps
        # Before the IdP and the person are checked: a deletion or a refusal committed while the
        # checks run then counts as after the token, and ends it (tokens/access.py).
        issued_at = clock.now()
        if not client.allow_saml_bearer:
            raise TokenError("unauthorized_client", "This client may not use SAML assertions.",
                             code="saml_bearer_not_allowed")
        requested = (form.get("scope") or "").split()
        if any(s not in client.scopes for s in requested):
            raise TokenError("invalid_scope", "Scopes not allowed for this client.")
        # Only an IdP that went live vouches for users (bridge.idps.stages). One reading of the
        # registry for the whole grant: the IdP that verified the signature is the one checked
        # below, even if this node reloads its IdPs meanwhile (one deleted, or another made
        # under its slug).
        live = {s: i for s, i in idps.items() if i.live}
        try:
            verified = verify_bearer_assertion(
                form.get("assertion", ""), idps=live, sp_entity_id=settings.sp_entity_id,
                token_url=f"{settings.base_url}/token", clock=clock)
        except ImplausibleAuthnInstant as implausible:
            # As at the ACS: a deprovisioned person is refused as such whatever else is wrong
            # with the assertion, once its IdP has passed the checks below.
            if implausible.refused is not None:
                idp = live[implausible.refused.idp_slug]
                idp.require_current_metadata(clock.now())
                with self.services.db.lookup() as connection:
                    self._require_in_force(connection, idp)
                refuse_if_person_deprovisioned(self.services.db, implausible.refused, idp)
            raise
        idp = live[verified.idp_slug]
        idp.require_current_metadata(clock.now())
        identity = to_identity(verified, idp)
        with self.services.db.lookup() as connection:
            self._require_in_force(connection, idp)
            refuse_if_deprovisioned(connection, idp_slug=idp.slug, subject=identity.subject)
        claims = build_claims(client.claims_version, identity, idp.settings.mapping,
                              idp.settings.authn_contexts)
        scope = " ".join(dict.fromkeys(requested))
        key = self.services.keys.signing_key(client.token_signing_alg)
        use_unsolicited(self.services.db, verified, now=clock.now(), event="saml_bearer",
                        outcome="success", client_id=client.client_id, subject=identity.subject)
        ttl = settings.access_token_ttl_seconds
        access_token = issue_access_token(
            token_claims(claims, scope, group_budget(settings)), issuer=settings.base_url,
            audience=client.audience, client_id=client.client_id, auth_time=identity.auth_time,
            scope=scope, ttl=ttl, key=key, clock=clock, dpop_jkt=dpop_jkt, issued_at=issued_at,
            through=THROUGH_FILE if idp.slug in idps.files else THROUGH_API)
        metrics.token_issued(client.client_id, "saml2_bearer")
        return TokenSet(access_token, ttl, None, scope, client,
                        token_type="DPoP" if dpop_jkt else "Bearer")

    def _require_in_force(self, connection: Runner, idp: IdentityProvider) -> None:
        # This node's registry may not have seen another node delete the IdP, or make another
        # under its slug: the token must come through the IdP in force.
        if not self.services.idps.still_in_force(connection, idp):
            raise TokenError("invalid_grant", "The assertion comes from no configured IdP.",
                             code="saml_idp_not_in_force", log_detail={"idp": idp.slug})
