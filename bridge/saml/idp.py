"""An identity provider as the SAML protocol sees it: its metadata (entity ID, endpoints,
signing certificates) and the few settings that change how its messages are checked and ours are
sent. What an IdP is to the bridge besides (display name, claim mapping, metadata lifecycle) is
``bridge.idps.settings``, which extends these types.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from onelogin.saml2.settings import OneLogin_Saml2_Settings

from bridge.errors import Misconfigured, SamlRejected
from bridge.saml import ns, onelogin
from bridge.saml.metadata import IdpMetadata
from bridge.saml.verify import CertificateKeys

MAX_CLOCK_SKEW = 300


@dataclass(frozen=True)
class SamlOptions:
    """The settings of an IdP that SAML processing reads."""

    clock_skew_seconds: int = 60
    # A stable attribute (e.g. Entra ID's object ID) to use as the subject instead of the NameID.
    subject_attribute: str | None = None
    # Time-boxed exception for legacy IdPs that still sign with SHA-1: refused after this date.
    insecure_allow_sha1_until: dt.date | None = None
    # Our requests to this IdP (docs/decisions/0020-sp-signing-key.md). sign_requests: "auto"
    # signs AuthnRequests when the IdP's metadata says WantAuthnRequestsSigned="true" and logout
    # messages always (SAML Profiles §4.4.3.1, §4.4.4.1); "always" signs everything; "never"
    # nothing (for an IdP that refuses signatures it has no key for). authn_request_binding:
    # "auto" uses HTTP-Redirect when the IdP offers it, else HTTP-POST; "redirect" or "post".
    sign_requests: str = "auto"
    authn_request_binding: str = "auto"

    def allows_sha1(self, now: float) -> bool:
        until = self.insecure_allow_sha1_until
        return until is not None and dt.datetime.fromtimestamp(now, dt.UTC).date() <= until


@dataclass
class SamlIdp:
    """An IdP as SAML sees it. ``bridge.idps.settings.IdentityProvider`` extends it with what
    only the bridge reads, so every IdP in force can be handed to ``saml/`` as it is."""

    slug: str
    metadata: IdpMetadata
    settings: SamlOptions
    keys: CertificateKeys = field(init=False)
    _onelogin: dict[tuple[str, str], OneLogin_Saml2_Settings] = field(
        init=False, default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.keys = CertificateKeys([c.pem for c in self.metadata.signing_certificates])

    def require_current_metadata(self, now: float) -> None:
        """SAML Metadata §2.3.1: past its ``validUntil`` a metadata document is not used, so
        nothing this IdP signs is trusted until current metadata is in force."""
        if self.metadata.expired(dt.datetime.fromtimestamp(now, dt.UTC)):
            assert self.metadata.valid_until is not None
            raise SamlRejected(
                "idp_metadata_expired",
                "This identity provider's metadata has expired; an administrator must load "
                "current metadata.",
                log_detail={"idp": self.slug,
                            "valid_until": self.metadata.valid_until.isoformat()})

    @property
    def sso_url(self) -> str:
        url = self.metadata.sso_redirect_url or self.metadata.sso_post_url
        assert url is not None  # metadata parsing guarantees one of them
        return url

    @property
    def signs_authn_requests(self) -> bool:
        if self.settings.sign_requests == "auto":
            return self.metadata.want_authn_requests_signed
        return self.settings.sign_requests == "always"

    @property
    def signs_logout_messages(self) -> bool:
        # SAML Profiles §4.4.3.1 and §4.4.4.1: logout messages MUST be signed on the Redirect
        # and POST bindings; only an explicit "never" leaves them unsigned.
        return self.settings.sign_requests != "never"

    def binding_problems(self) -> list[str]:
        """What makes this IdP's settings impossible with its metadata (empty: nothing)."""
        wanted = self.settings.authn_request_binding
        if wanted == "redirect" and self.metadata.sso_redirect_url is None:
            return ["authn_request_binding is \"redirect\" but the IdP's metadata has no "
                    "SingleSignOnService with the HTTP-Redirect binding (use \"auto\" or \"post\")"]
        if wanted == "post" and self.metadata.sso_post_url is None:
            return ["authn_request_binding is \"post\" but the IdP's metadata has no "
                    "SingleSignOnService with the HTTP-POST binding (use \"auto\" or "
                    "\"redirect\")"]
        return []

    def authn_request_endpoint(self) -> tuple[str, str]:
        """(binding, URL) our AuthnRequests go to, by ``authn_request_binding``."""
        redirect, post = self.metadata.sso_redirect_url, self.metadata.sso_post_url
        wanted = self.settings.authn_request_binding
        if wanted == "post" or (wanted == "auto" and redirect is None):
            if post is not None:
                return ns.BINDING_POST, post
        elif redirect is not None:
            return ns.BINDING_REDIRECT, redirect
        # Metadata applied after the setting was made no longer offers the binding it names.
        raise Misconfigured(self.binding_problems(), code="idp_binding_unavailable")

    def logout_endpoint(self, *, response: bool = False) -> tuple[str, str] | None:
        """(binding, URL) of the IdP's Single Logout service for a LogoutRequest, or with
        ``response`` for a LogoutResponse (its ResponseLocation if it has one): HTTP-Redirect when
        offered, else HTTP-POST. None when the IdP has no Single Logout service."""
        md = self.metadata
        if md.slo_redirect_url is not None:
            url = (md.slo_redirect_response_url if response else None) or md.slo_redirect_url
            return ns.BINDING_REDIRECT, url
        if md.slo_post_url is not None:
            url = (md.slo_post_response_url if response else None) or md.slo_post_url
            return ns.BINDING_POST, url
        return None

    def onelogin_settings(self, sp: Any) -> OneLogin_Saml2_Settings:
        """python3-saml settings for this IdP and our SP, built once. No decryption key: it
        validates encrypted assertions after our decryption (``response._as_decrypted``)."""
        key = (sp.entity_id, sp.acs_url)
        with self._lock:
            cached = self._onelogin.get(key)
            if cached is None:
                cached = self._onelogin[key] = onelogin.build_settings(onelogin.OneLoginParams(
                    sp_entity_id=sp.entity_id,
                    acs_url=sp.acs_url,
                    idp_entity_id=self.metadata.entity_id,
                    idp_sso_url=self.sso_url,
                    idp_certificates=tuple(c.pem for c in self.metadata.signing_certificates),
                    allow_sha1=self.settings.insecure_allow_sha1_until is not None,
                    idp_slo_url=self.metadata.slo_redirect_url,
                ))
            return cached
