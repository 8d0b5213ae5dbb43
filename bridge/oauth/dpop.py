"""DPoP at our endpoints (RFC 9449): what a client's ``dpop`` setting asks of a token request,
and the full check of one proof — its form (``tokens/dpop.py``), its nonce (``tokens/dpop_nonce.py``,
§8) and its single use across nodes (``tokens/dpop_replay.py``, §11.1).

The URL a proof must name is built from ``base_url``, never from the request's Host header."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.audit import Refusal, record_refusal
from bridge.config import ClientConfig
from bridge.errors import DpopError
from bridge.tokens.dpop import ProofRequirements, VerifiedProof, verify_proof
from bridge.tokens.dpop_nonce import DpopNonces
from bridge.tokens.dpop_replay import use_proof

if TYPE_CHECKING:
    from bridge.services import Services


class DpopChecker:
    def __init__(self, services: Services) -> None:
        self.services = services

    def nonces(self) -> DpopNonces:
        return DpopNonces(self.services.secrets.dpop_nonce,
                          self.services.settings.dpop_nonce_lifetime_seconds)

    def fresh_nonce(self) -> str | None:
        """The nonce to hand out now (the ``DPoP-Nonce`` header), when nonces are required."""
        if not self.services.settings.dpop_nonce_required:
            return None
        return self.nonces().current(self.services.clock.now())

    def for_token_request(self, client: ClientConfig, proofs: list[str], *,
                          path: str = "/token", required: bool = True) -> str | None:
        """The key (RFC 7638 thumbprint) the request proved, to bind its tokens to, or None
        for Bearer tokens. ``proofs`` are the request's ``DPoP`` header values; a client with
        ``dpop = "required"`` must send one unless ``required`` is false (revocation and
        logout, which need a proof only for a login bound to a key). Refusals are audited
        (``dpop``), but for a nonce asked for: that is how every client starts."""
        if client.dpop == "off":
            return None  # §5: a server that does not do DPoP for this client ignores the header
        try:
            if not proofs:
                if client.dpop == "required" and required:
                    raise DpopError("invalid_dpop_proof", "This client must send a DPoP proof.",
                                    log_detail={"why": "no DPoP header"})
                return None
            return self.check(proofs, method="POST", path=path).jkt
        except DpopError as error:
            if error.oauth_error != "use_dpop_nonce":
                record_refusal(self.services, "dpop", error, Refusal(client_id=client.client_id))
            # Every answer to a DPoP client carries the nonce its next proof needs.
            error.nonce = error.nonce or self.fresh_nonce()
            raise

    def check(self, proofs: list[str], *, method: str, path: str,
              access_token: str | None = None) -> VerifiedProof:
        """Verify the one proof of a request to ``path`` (§4.3, §7.1 with ``access_token``) and
        use it up; raise ``DpopError``."""
        settings, now = self.services.settings, self.services.clock.now()
        if len(proofs) != 1:
            raise DpopError("invalid_dpop_proof", "Send exactly one DPoP header.",
                            log_detail={"why": f"{len(proofs)} DPoP headers"})
        verified = verify_proof(proofs[0], ProofRequirements(
            method=method, url=settings.base_url + path, now=now,
            max_age_seconds=settings.dpop_proof_max_age_seconds,
            clock_skew_seconds=settings.dpop_clock_skew_seconds, access_token=access_token))
        if settings.dpop_nonce_required and not self.nonces().accepts(verified.nonce, now):
            raise DpopError("use_dpop_nonce", "Use the DPoP nonce of the DPoP-Nonce header.",
                            code="use_dpop_nonce", nonce=self.fresh_nonce(),
                            log_detail={"why": "no nonce" if verified.nonce is None
                                        else "a nonce no longer current"})
        # Kept until the proof would be refused as too old anyway.
        expires_at = (verified.iat + settings.dpop_proof_max_age_seconds
                      + 2 * settings.dpop_clock_skew_seconds)
        with self.services.db.single_statement() as connection:
            fresh = use_proof(connection, jkt=verified.jkt, jti=verified.jti,
                              expires_at=max(expires_at, now))
        if not fresh:
            raise DpopError("invalid_dpop_proof", "This DPoP proof was used before.",
                            code="dpop_proof_replayed", log_detail={"jkt": verified.jkt})
        return verified
