"""OAuth 2.0 request validation: authorization requests (RFC 6749 §4.1.1 + PKCE, RFC 7636) and
client authentication at the token endpoint (RFC 6749 §2.3). Plain values in, plain values out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.config import ClientConfig
from bridge.errors import AuthorizeError, TokenError
from bridge.oauth.authn_requirement import NONE as NO_REQUIREMENT
from bridge.oauth.authn_requirement import AuthnRequirement, parse_authn_requirement

if TYPE_CHECKING:
    from bridge.clients.registry import ClientRegistry

# RFC 7636 §4.1/§4.2: verifier 43-128 unreserved characters; an S256 challenge is 43 of base64url.
# \Z, not $: $ also matches before a final newline.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}\Z")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}\Z")
# RFC 9449 §10: dpop_jkt, a base64url SHA-256 JWK thumbprint, the same shape as a challenge.
_THUMBPRINT = _CHALLENGE
_MAX_STATE = 1024


def _has_control_characters(text: str) -> bool:
    return any(c < " " or c == "\x7f" for c in text)


@dataclass(frozen=True)
class AuthorizationRequest:
    client: ClientConfig
    redirect_uri: str
    state: str | None
    code_challenge: str | None
    scope: str
    nonce: str | None
    idp: str | None
    login_hint: str | None
    # acr_values, max_age, prompt: what the login itself must be (OIDC Core §3.1.2.1).
    requirement: AuthnRequirement = NO_REQUIREMENT
    # RFC 9449 §10: the code is exchanged only with a proof of this key.
    dpop_jkt: str | None = None


def parse_authorization_request(clients: ClientRegistry,
                                params: Mapping[str, str]) -> AuthorizationRequest:
    # Until client_id and redirect_uri are verified, errors are shown to the user and never sent
    # to a redirect_uri (RFC 6749 §4.1.2.1): an open redirector is how phishing starts.
    client_id = params.get("client_id", "")
    client = clients.client(client_id)
    if client is None:
        raise AuthorizeError("client_unknown", "Unknown client_id.",
                             log_detail={"client_id": client_id[:64]})
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise AuthorizeError("redirect_uri_invalid",
                             "redirect_uri is not registered for this client (exact match).",
                             log_detail={"redirect_uri": redirect_uri[:256]})

    def refuse(code: str, detail: str, oauth_error: str = "invalid_request") -> AuthorizeError:
        return AuthorizeError(code, detail, oauth_error=oauth_error, redirectable=True)

    state = params.get("state") or None
    if state is not None and len(state) > _MAX_STATE:
        raise refuse("invalid_request", "state is too long.")
    if state is not None and _has_control_characters(state):
        # RFC 6749 Appendix A.5: state is VSCHAR (%x20-7E); a NUL could not even be stored.
        raise refuse("invalid_request", "state holds a control character.")
    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "Only response_type=code is supported.",
                     "unsupported_response_type")
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is None:
        if client.public:
            raise refuse("pkce_required", "Public clients must send a PKCE code_challenge (S256).")
        if method is not None:
            raise refuse("invalid_request", "code_challenge_method without code_challenge.")
    else:
        if method != "S256":
            raise refuse("pkce_method", "code_challenge_method must be S256.")
        if not _CHALLENGE.match(challenge):
            raise refuse("invalid_request", "code_challenge is not a base64url SHA-256 value.")
    requested = (params.get("scope") or "").split()
    unknown = [s for s in requested if s not in client.scopes]
    if unknown:
        raise refuse("invalid_scope", f"Scopes not allowed for this client: {' '.join(unknown)}",
                     "invalid_scope")
    nonce = params.get("nonce") or None
    if nonce is not None and len(nonce) > _MAX_STATE:
        raise refuse("invalid_request", "nonce is too long.")
    if nonce is not None and _has_control_characters(nonce):
        raise refuse("invalid_request", "nonce holds a control character.")
    requirement = parse_authn_requirement(params, refuse)
    dpop_jkt = params.get("dpop_jkt") or None
    if client.dpop == "off":
        dpop_jkt = None  # a client without DPoP ignores it, as the token endpoint ignores proofs
    elif dpop_jkt is not None and not _THUMBPRINT.match(dpop_jkt):
        raise refuse("invalid_request", "dpop_jkt is not a base64url SHA-256 thumbprint.")
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        scope=" ".join(dict.fromkeys(requested)),
        nonce=nonce,
        idp=params.get("idp") or None,
        login_hint=params.get("login_hint") or None,
        requirement=requirement,
        dpop_jkt=dpop_jkt,
    )


def check_code_verifier(verifier: str | None) -> str:
    if not verifier or not _VERIFIER.match(verifier):
        raise TokenError("invalid_grant", "code_verifier is missing or malformed.",
                         code="pkce_verifier_invalid")
    return verifier


def authenticate_client(
    clients: ClientRegistry,
    form: Mapping[str, str],
    basic: tuple[str, str] | None,
) -> ClientConfig:
    """RFC 6749 §2.3: confidential clients authenticate; public clients identify themselves."""
    if basic is not None:
        client_id, secret = basic
        if form.get("client_secret"):
            raise TokenError("invalid_request", "Use one client authentication method, not two.")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if form.get("client_id") and form.get("client_id") != client_id:
        raise TokenError("invalid_client", "client_id does not match the authenticated client.")
    client = clients.client(client_id)
    if client is None:
        raise TokenError("invalid_client", "Unknown client.", code="client_unknown")
    if client.public:
        if secret:
            raise TokenError("invalid_client", "Public clients have no secret.")
        return client
    if not clients.secret_matches(client, secret):
        raise TokenError("invalid_client", "Client authentication failed.",
                         code="client_authentication_failed")
    return client
