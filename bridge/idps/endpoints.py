"""Which IdP an endpoint belongs to (docs/decisions/0021-one-idp-per-endpoint.md).

Our SP signing key signs what we send every IdP, and every IdP that checks our signatures trusts
it. A message that carries values one IdP gave us (a LogoutRequest with its NameID and
SessionIndex, a LogoutResponse with its request ID) must therefore never reach another IdP: IdP
B's metadata could name IdP A's Single Logout service, and B's login name A's user, and we would
sign a logout of A's user that A accepts.

The rule: an IdP's Single Logout service (Location and ResponseLocation, HTTP-Redirect and
HTTP-POST) is on an *origin* (scheme, host, port) where no other IdP has an endpoint of any kind;
Single Sign-On services may share an origin with each other, since an AuthnRequest carries
nothing an IdP chose. An origin is compared, not a URL: an IdP tells its endpoints apart by path,
and takes many spellings of one (a trailing slash, another case, its own domain name in place of
a tenant ID), so a URL check would be passed by a variant.

Multi-tenant services keep many IdPs on one origin (Entra ID's login.microsoftonline.com,
Keycloak's realms): origins listed in ``idp_shared_origins`` are compared by whole URL instead,
trusting that service to keep its tenants apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bridge.saml.metadata import IdpMetadata

_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Endpoint:
    service: str  # "SingleSignOnService" or "SingleLogoutService"
    attribute: str  # "Location" or "ResponseLocation"
    url: str

    @property
    def logout(self) -> bool:
        return self.service == "SingleLogoutService"


def endpoints(metadata: IdpMetadata) -> list[Endpoint]:
    """Every URL of this IdP's metadata that we send a browser or a message to."""
    found = [Endpoint("SingleSignOnService", "Location", url)
             for url in (metadata.sso_redirect_url, metadata.sso_post_url) if url]
    found += [Endpoint("SingleLogoutService", "Location", url)
              for url in (metadata.slo_redirect_url, metadata.slo_post_url) if url]
    found += [Endpoint("SingleLogoutService", "ResponseLocation", url)
              for url in (metadata.slo_redirect_response_url, metadata.slo_post_response_url)
              if url]
    return found


def origin(url: str) -> str:
    """scheme://host:port, as one site is written every way (RFC 6454 §4): lower case, the
    default port made explicit, a final dot of a fully qualified host name dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def normalized_origins(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(origin(o) for o in origins)


def place(url: str, shared_origins: frozenset[str]) -> str:
    """What may belong to one IdP only: the origin, or on a shared origin the URL itself."""
    where = origin(url)
    if where not in shared_origins:
        return where
    parts = urlsplit(url)
    return where + parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True)
class Clash:
    mine: Endpoint
    other_slug: str
    theirs: Endpoint
    place: str

    def describe(self, holder: str) -> str:
        return (f"{self.mine.service} {self.mine.attribute} {self.mine.url} is on {self.place}, "
                f"where IdP {self.other_slug} ({holder}) has its {self.theirs.service} "
                f"{self.theirs.url}; an IdP's Single Logout service must be on an origin no other "
                "IdP uses, or our signed logout messages for one IdP's users would reach the "
                "other (list the origin in idp_shared_origins if it is a multi-tenant service "
                "that keeps its tenants apart)")


def clashes(metadata: IdpMetadata, others: Mapping[str, IdpMetadata],
            shared_origins: frozenset[str]) -> list[Clash]:
    """Where ``metadata``'s endpoints and another IdP's meet on one place while one of the two is
    a Single Logout service: the first such meeting with each other IdP."""
    found = []
    mine = [(e, place(e.url, shared_origins)) for e in endpoints(metadata)]
    for slug, other in sorted(others.items()):
        found += [Clash(endpoint, slug, theirs, at)
                  for theirs in endpoints(other) for endpoint, at in mine
                  if at == place(theirs.url, shared_origins) and (endpoint.logout or theirs.logout)
                  ][:1]
    return found
