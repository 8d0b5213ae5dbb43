"""Identity providers: metadata plus per-IdP settings, loaded from ``idp_metadata/``.

``<slug>.xml`` is the IdP's SAML metadata; ``<slug>.toml`` beside it (optional) holds its settings.
Everything is validated at start-up and every problem is reported with the file it is in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onelogin.saml2.settings import OneLogin_Saml2_Settings

from bridge.claims.mapping import ClaimMapping, parse_mapping
from bridge.claims.presets import DEFAULT as DEFAULT_MAPPING
from bridge.claims.presets import MAPPING_PRESETS, PRESETS
from bridge.errors import ConfigError, SamlRejected
from bridge.saml import ns, onelogin
from bridge.saml.metadata import IdpMetadata, parse_idp_metadata
from bridge.saml.verify import CertificateKeys

# \Z, not $: $ also matches before a final newline, and "acme\n" is no slug.
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
MAX_CLOCK_SKEW = 300


@dataclass(frozen=True)
class IdpSettings:
    display_name: str = ""
    allow_idp_initiated: bool = False
    # Clients an IdP-initiated login may be sent to (RelayState names one; the first is the default).
    idp_initiated_clients: tuple[str, ...] = ()
    clock_skew_seconds: int = 60
    # A stable attribute (e.g. Entra ID's object ID) to use as the subject instead of the NameID.
    subject_attribute: str | None = None
    # E-mail domains for login_hint discovery when several IdPs are configured.
    email_domains: tuple[str, ...] = ()
    # Time-boxed exception for legacy IdPs that still sign with SHA-1: refused after this date.
    insecure_allow_sha1_until: dt.date | None = None
    # How this IdP's attributes become claims (bridge.claims.mapping), preset included.
    mapping: ClaimMapping = DEFAULT_MAPPING
    # Metadata lifecycle (IdPs managed through the admin API): which changes of refreshed or
    # uploaded metadata apply without a person ("additions": new certificates only; "all";
    # "none"), how often a metadata URL is fetched, and the certificate that must sign it.
    metadata_auto_apply: str = "additions"
    metadata_refresh_seconds: int = 6 * 3600
    metadata_signing_certificate: str | None = None
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
class IdentityProvider:
    slug: str
    metadata: IdpMetadata
    settings: IdpSettings
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
    def display_name(self) -> str:
        return self.settings.display_name or self.slug

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
        raise ConfigError(self.binding_problems(), code="idp_binding_unavailable")

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


def load_idp_directory(directory: str | Path, *, now: dt.datetime) -> dict[str, IdentityProvider]:
    """Load every ``<slug>.xml`` (+ ``<slug>.toml``); raise ``ConfigError`` listing all problems."""
    path = Path(directory)
    problems: list[str] = []
    idps: dict[str, IdentityProvider] = {}
    if not path.is_dir():
        raise ConfigError(f"idp_metadata_dir: {path} is not a directory (create it, or set "
                          "BRIDGE_IDP_METADATA_DIR)")
    for toml_file in sorted(path.glob("*.toml")):
        if not toml_file.with_suffix(".xml").exists():
            problems.append(f"{toml_file}: settings without metadata ({toml_file.stem}.xml missing)")
    for xml_file in sorted(path.glob("*.xml")):
        slug = xml_file.stem
        if not SLUG_RE.match(slug):
            problems.append(f"{xml_file}: the file name must be a slug matching "
                            "[a-z0-9][a-z0-9-]{0,62} followed by .xml")
            continue
        try:
            metadata = parse_idp_metadata(xml_file.read_bytes(), source=str(xml_file), now=now)
            settings = load_idp_settings(xml_file.with_suffix(".toml"))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        idp = IdentityProvider(slug=slug, metadata=metadata, settings=settings)
        problems.extend(f"{xml_file.with_suffix('.toml')}: {p}" for p in idp.binding_problems())
        idps[slug] = idp
    entity_ids: dict[str, str] = {}
    for slug, idp in idps.items():
        other = entity_ids.setdefault(idp.metadata.entity_id, slug)
        if other != slug:
            problems.append(f"{path}/{slug}.xml: entity ID {idp.metadata.entity_id!r} is already "
                            f"used by {other}.xml")
    if problems:
        raise ConfigError(problems)
    return idps


# The keys of an IdP's settings (<slug>.toml, or through the admin API); docs/configuration.md
# lists each, and a test holds it to this.
IDP_SETTING_KEYS = frozenset({
    "display_name", "allow_idp_initiated", "idp_initiated_clients", "clock_skew_seconds",
    "subject_attribute", "email_domains", "insecure_allow_sha1_until", "mapping",
    "metadata_auto_apply", "metadata_refresh_seconds", "metadata_signing_certificate",
    "sign_requests", "authn_request_binding"})


def load_idp_settings(toml_file: Path) -> IdpSettings:
    if not toml_file.exists():
        return IdpSettings()
    try:
        raw = tomllib.loads(toml_file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{toml_file}: not valid TOML ({exc})") from None
    return parse_idp_settings(raw, source=str(toml_file))


def parse_idp_settings(raw: dict[str, Any], *, source: str) -> IdpSettings:
    problems: list[str] = []
    for key in sorted(set(raw) - IDP_SETTING_KEYS):
        problems.append(f"{source}: {key}: unknown IdP setting")
    display_name = raw.get("display_name", "")
    if not isinstance(display_name, str) or any(c < " " or c == "\x7f" for c in display_name):
        problems.append(f"{source}: display_name: must be a string with no control characters")
    allow_idp_initiated = raw.get("allow_idp_initiated", False)
    if not isinstance(allow_idp_initiated, bool):
        problems.append(f"{source}: allow_idp_initiated: must be true or false")
    targets = raw.get("idp_initiated_clients", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
        problems.append(f"{source}: idp_initiated_clients: must be a list of client IDs")
        targets = []
    if allow_idp_initiated is True and not targets:
        problems.append(f"{source}: allow_idp_initiated needs idp_initiated_clients: the clients "
                        "whose login_start_uri an IdP-initiated login is sent to")
    skew = raw.get("clock_skew_seconds", 60)
    if isinstance(skew, bool) or not isinstance(skew, int) or not 0 <= skew <= MAX_CLOCK_SKEW:
        problems.append(f"{source}: clock_skew_seconds: must be an integer from 0 to "
                        f"{MAX_CLOCK_SKEW}, got {skew!r}")
    subject_attribute = raw.get("subject_attribute")
    if subject_attribute is not None and (not isinstance(subject_attribute, str)
                                          or not subject_attribute):
        problems.append(f"{source}: subject_attribute: must be an attribute name")
    domains = raw.get("email_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        problems.append(f"{source}: email_domains: must be a list of domain names")
        domains = []
    sha1_until = raw.get("insecure_allow_sha1_until")
    if isinstance(sha1_until, str):  # settings stored as JSON carry dates as ISO strings
        with contextlib.suppress(ValueError):
            sha1_until = dt.date.fromisoformat(sha1_until)
    if sha1_until is not None and not isinstance(sha1_until, dt.date):
        problems.append(f"{source}: insecure_allow_sha1_until: must be a TOML date (2027-06-30)")
        sha1_until = None
    auto_apply = raw.get("metadata_auto_apply", "additions")
    if auto_apply not in ("additions", "all", "none"):
        problems.append(f"{source}: metadata_auto_apply: one of additions, all, none")
        auto_apply = "additions"
    refresh = raw.get("metadata_refresh_seconds", 6 * 3600)
    if isinstance(refresh, bool) or not isinstance(refresh, int) or not 300 <= refresh <= 7 * 86400:
        problems.append(f"{source}: metadata_refresh_seconds: an integer from 300 to 604800")
        refresh = 6 * 3600
    pinned = raw.get("metadata_signing_certificate")
    if pinned is not None and (not isinstance(pinned, str) or "BEGIN CERTIFICATE" not in pinned):
        problems.append(f"{source}: metadata_signing_certificate: a PEM certificate")
        pinned = None
    sign_requests = raw.get("sign_requests", "auto")
    if sign_requests not in ("auto", "always", "never"):
        problems.append(f"{source}: sign_requests: one of auto, always, never")
        sign_requests = "auto"
    binding = raw.get("authn_request_binding", "auto")
    if binding not in ("auto", "redirect", "post"):
        problems.append(f"{source}: authn_request_binding: one of auto, redirect, post")
        binding = "auto"
    mapping = DEFAULT_MAPPING
    try:
        mapping = parse_mapping(raw.get("mapping"), source=source, presets=MAPPING_PRESETS)
    except ConfigError as error:
        problems.extend(error.problems)
    if subject_attribute is None and mapping.preset is not None:
        # A vendor preset knows the vendor's stable identifier (Entra ID: the object ID).
        subject_attribute = PRESETS[mapping.preset].subject_attribute
    if problems:
        raise ConfigError(problems)
    return IdpSettings(
        mapping=mapping,
        metadata_auto_apply=auto_apply,
        metadata_refresh_seconds=refresh,
        metadata_signing_certificate=pinned,
        display_name=display_name,
        allow_idp_initiated=allow_idp_initiated,
        idp_initiated_clients=tuple(targets),
        clock_skew_seconds=skew,
        subject_attribute=subject_attribute,
        email_domains=tuple(d.lower() for d in domains),
        insecure_allow_sha1_until=sha1_until,
        sign_requests=sign_requests,
        authn_request_binding=binding,
    )
