"""Discovery (RFC 8414 / OpenID Connect Discovery), JWKS and the published claim schemas."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, Response, jsonify

from bridge.claims import schemas
from bridge.config import ClientConfig, Settings
from bridge.errors import NotFound
from bridge.tokens.dpop import ALGORITHMS as DPOP_ALGORITHMS
from bridge.web.context import services

discovery = Blueprint("discovery", __name__)


def discovery_document(settings: Settings, clients: Iterable[ClientConfig],
                       acr_values: list[str]) -> dict[str, object]:
    """``clients``: every client in force, the file's and the managed ones; ``acr_values``:
    those some IdP has a level for (bridge.claims.authn_levels)."""
    base = settings.base_url
    scopes = sorted({s for c in clients for s in c.scopes})
    claim_names = sorted({name for v in schemas.VERSIONS for name in schemas.schema(v)["properties"]})
    document: dict[str, object] = {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "revocation_endpoint": f"{base}/revoke",
        "userinfo_endpoint": f"{base}/userinfo",
        "introspection_endpoint": f"{base}/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "end_session_endpoint": f"{base}/logout",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token",
                                  "urn:ietf:params:oauth:grant-type:token-exchange",
                                  "urn:ietf:params:oauth:grant-type:saml2-bearer"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic",
                                                  "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic",
                                                       "client_secret_post"],
        "scopes_supported": scopes,
        "claims_supported": claim_names,
        "subject_types_supported": ["public"],
        "access_token_signing_alg_values_supported": [settings.token_signing_alg],
        "id_token_signing_alg_values_supported": [settings.token_signing_alg],
        "acr_values_supported": acr_values,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "authorization_response_iss_parameter_supported": False,
        "claims_schema_versions_supported": list(schemas.VERSIONS),
        "claims_schemas": {str(v): f"{base}/schemas/claims/v{v}.json" for v in schemas.VERSIONS},
        # RFC 9449 §5.1: always, since a client registered at run time may use DPoP too.
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }
    if settings.registration_token:
        document["registration_endpoint"] = f"{base}/register"  # RFC 7591, when enabled
    return document


@discovery.get("/.well-known/openid-configuration")
@discovery.get("/.well-known/oauth-authorization-server")
def configuration() -> Response:
    the_services = services()
    acr_values = sorted({acr for idp in the_services.idps.values()
                         for acr in idp.settings.authn_contexts.acr_values})
    response = jsonify(discovery_document(the_services.settings, the_services.clients.values(),
                                          acr_values))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@discovery.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(services().keys.jwks())
    # Short: a key published ahead of its use is seen well before it signs.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@discovery.get("/schemas/claims/v<int:version>.json")
def claims_schema(version: int) -> Response:
    if version not in schemas.VERSIONS:
        raise NotFound("schema_unknown", f"There is no claims schema version {version}.")
    return Response(schemas.schema_text(version), mimetype="application/schema+json")
