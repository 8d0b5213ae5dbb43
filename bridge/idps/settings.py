"""What an IdP is to the bridge: its settings (how its attributes become claims, who it may send
to, how its metadata is kept current) on top of what the SAML protocol reads of it
(``bridge.saml.idp``). Settings come from ``<slug>.toml`` or through the admin API; both are
validated here, and every problem is reported with where it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.claims.authn_levels import NONE as NO_AUTHN_CONTEXTS
from bridge.claims.authn_levels import AuthnContexts, parse_authn_contexts
from bridge.claims.mapping import ClaimMapping, parse_mapping
from bridge.claims.presets import DEFAULT as DEFAULT_MAPPING
from bridge.claims.presets import MAPPING_PRESETS, PRESETS
from bridge.config.problems import Problems
from bridge.idps.event_settings import (
    SecurityEventSettings,
    parse_scim_user_key,
    parse_security_events,
)
from bridge.idps.internal_hosts import InternalHosts, parse_internal_hosts
from bridge.saml.idp import MAX_CLOCK_SKEW, SamlIdp, SamlOptions
from bridge.unicode_text import not_text_at, not_text_problem

# \Z, not $: $ also matches before a final newline, and "acme\n" is no slug.
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")


@dataclass(frozen=True)
class IdpSettings(SamlOptions):
    """Every setting of an IdP: those SAML reads (``SamlOptions``) and the bridge's own."""

    display_name: str = ""
    allow_idp_initiated: bool = False
    # Clients an IdP-initiated login may be sent to (RelayState names one; the first is the default).
    idp_initiated_clients: tuple[str, ...] = ()
    # E-mail domains for login_hint discovery when several IdPs are configured.
    email_domains: tuple[str, ...] = ()
    # How this IdP's attributes become claims (bridge.claims.mapping), preset included.
    mapping: ClaimMapping = DEFAULT_MAPPING
    # Our acr values and this IdP's AuthnContextClassRef values (bridge.claims.authn_levels):
    # what acr_values may ask of it, and what its answers are worth.
    authn_contexts: AuthnContexts = NO_AUTHN_CONTEXTS
    # Metadata lifecycle (IdPs managed through the admin API): which changes of refreshed or
    # uploaded metadata apply without a person ("additions": new certificates only; "all";
    # "none"), how often a metadata URL is fetched, and the certificate that must sign it.
    metadata_auto_apply: str = "additions"
    metadata_refresh_seconds: int = 6 * 3600
    metadata_signing_certificate: str | None = None
    # Deprovisioning pushed by the IdP (bridge.provisioning): the SCIM attribute that holds what
    # a login takes as the subject, and the transmitter of its Security Event Tokens.
    scim_user_key: str = "userName"
    security_events: SecurityEventSettings | None = None
    # Internal hosts (with their private addresses) its metadata URL may be on: AD FS.
    metadata_internal_hosts: InternalHosts = ()


@dataclass
class IdentityProvider(SamlIdp):
    """An IdP in force: handed to ``saml/`` as the ``SamlIdp`` it is, read whole by the bridge."""

    settings: IdpSettings  # the same field, with the bridge's settings on top of SAML's
    # Offered to users (IdP chooser, /authorize, admin sign-in): files always; an API-managed IdP
    # once it went live (bridge.idps.stages). The metadata version in force, if stored.
    live: bool = True
    version_id: int | None = None
    # Of the stored settings it was loaded with (settings_fingerprint): what a test login saw.
    settings_fingerprint: str | None = None
    # When its record was made (API-managed IdPs): another made under the slug is another IdP.
    created_at: float | None = None

    @property
    def display_name(self) -> str:
        return self.settings.display_name or self.slug


def settings_fingerprint(settings_json: str) -> str:
    """Which stored settings an IdP is in force with: a passing test login counts for go-live
    only while the settings it was made with are in force (docs/decisions/0025)."""
    return hashlib.sha256(settings_json.encode()).hexdigest()


def stored_value(settings_json: str) -> Any:
    """Stored settings as JSON reads them. Every write stores an object; a row changed by hand
    may hold other JSON, or text that is not JSON, which is returned as it is (loading it says
    what is wrong, and the audit trail records it as it was)."""
    try:
        return json.loads(settings_json)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than it reads
        return settings_json


def settings_object(settings_json: str) -> dict[str, Any]:
    """Stored settings as an object: anything else reads as no settings (see ``stored_value``)."""
    value = stored_value(settings_json)
    return value if isinstance(value, dict) else {}


def offered(idps: Mapping[str, IdentityProvider]) -> dict[str, IdentityProvider]:
    """The IdPs users may log in through: those that are live."""
    return {slug: idp for slug, idp in idps.items() if idp.live}


# The keys of an IdP's settings (<slug>.toml, or through the admin API); docs/configuration.md
# lists each, and a test holds it to this.
IDP_SETTING_KEYS = frozenset({
    "display_name", "allow_idp_initiated", "idp_initiated_clients", "clock_skew_seconds",
    "subject_attribute", "email_domains", "insecure_allow_sha1_until", "mapping",
    "metadata_auto_apply", "metadata_refresh_seconds", "metadata_signing_certificate",
    "metadata_internal_hosts", "sign_requests", "authn_request_binding", "authn_contexts",
    "scim_user_key", "security_events"})


def parse_idp_settings(raw: Any, *, source: str) -> IdpSettings:
    problems = Problems(source)
    if not isinstance(raw, dict):  # stored settings changed by hand (``stored_value``)
        problems.add(f"must be a table of settings, not {type(raw).__name__}")
        problems.raise_any()
    # A string that is not Unicode text (JSON's "\ud800") would break every page and answer
    # that shows it, the IdP chooser first: no setting holds one, from a file or the admin API.
    not_text = not_text_at(raw)
    if not_text is not None:
        problems.add(not_text_problem(not_text))
        problems.raise_any()
    for key in sorted(set(raw) - IDP_SETTING_KEYS):
        problems.add(f"{key}: unknown IdP setting")
    display_name = raw.get("display_name", "")
    if not isinstance(display_name, str) or any(c < " " or c == "\x7f" for c in display_name):
        problems.add("display_name: must be a string with no control characters")
    allow_idp_initiated = raw.get("allow_idp_initiated", False)
    if not isinstance(allow_idp_initiated, bool):
        problems.add("allow_idp_initiated: must be true or false")
    targets = raw.get("idp_initiated_clients", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
        problems.add("idp_initiated_clients: must be a list of client IDs")
        targets = []
    if allow_idp_initiated is True and not targets:
        problems.add("allow_idp_initiated needs idp_initiated_clients: the clients "
                     "whose login_start_uri an IdP-initiated login is sent to")
    skew = raw.get("clock_skew_seconds", 60)
    if isinstance(skew, bool) or not isinstance(skew, int) or not 0 <= skew <= MAX_CLOCK_SKEW:
        problems.add(f"clock_skew_seconds: must be an integer from 0 to "
                     f"{MAX_CLOCK_SKEW}, got {skew!r}")
    subject_attribute = raw.get("subject_attribute")
    if subject_attribute is not None and (not isinstance(subject_attribute, str)
                                          or not subject_attribute):
        problems.add("subject_attribute: must be an attribute name")
    domains = raw.get("email_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        problems.add("email_domains: must be a list of domain names")
        domains = []
    sha1_until = raw.get("insecure_allow_sha1_until")
    if isinstance(sha1_until, str):  # settings stored as JSON carry dates as ISO strings
        with contextlib.suppress(ValueError):
            sha1_until = dt.date.fromisoformat(sha1_until)
    if sha1_until is not None and not isinstance(sha1_until, dt.date):
        problems.add("insecure_allow_sha1_until: must be a TOML date (2027-06-30)")
        sha1_until = None
    auto_apply = raw.get("metadata_auto_apply", "additions")
    if auto_apply not in ("additions", "all", "none"):
        problems.add("metadata_auto_apply: one of additions, all, none")
        auto_apply = "additions"
    refresh = raw.get("metadata_refresh_seconds", 6 * 3600)
    if isinstance(refresh, bool) or not isinstance(refresh, int) or not 300 <= refresh <= 7 * 86400:
        problems.add("metadata_refresh_seconds: an integer from 300 to 604800")
        refresh = 6 * 3600
    pinned = raw.get("metadata_signing_certificate")
    if pinned is not None and (not isinstance(pinned, str) or "BEGIN CERTIFICATE" not in pinned):
        problems.add("metadata_signing_certificate: a PEM certificate")
        pinned = None
    internal_hosts = parse_internal_hosts(raw.get("metadata_internal_hosts"), problems.add)
    sign_requests = raw.get("sign_requests", "auto")
    if sign_requests not in ("auto", "always", "never"):
        problems.add("sign_requests: one of auto, always, never")
        sign_requests = "auto"
    binding = raw.get("authn_request_binding", "auto")
    if binding not in ("auto", "redirect", "post"):
        problems.add("authn_request_binding: one of auto, redirect, post")
        binding = "auto"
    scim_user_key = parse_scim_user_key(raw, problems)
    security_events = parse_security_events(raw, problems)
    mapping = DEFAULT_MAPPING
    with problems.collecting():
        mapping = parse_mapping(raw.get("mapping"), source=source, presets=MAPPING_PRESETS)
    authn_contexts = NO_AUTHN_CONTEXTS
    with problems.collecting():
        authn_contexts = parse_authn_contexts(raw.get("authn_contexts"), source=source)
    if subject_attribute is None and mapping.preset is not None:
        # A vendor preset knows the vendor's stable identifier (Entra ID: the object ID).
        subject_attribute = PRESETS[mapping.preset].subject_attribute
    problems.raise_any()
    return IdpSettings(
        mapping=mapping,
        authn_contexts=authn_contexts,
        metadata_auto_apply=auto_apply,
        metadata_refresh_seconds=refresh,
        metadata_signing_certificate=pinned,
        metadata_internal_hosts=internal_hosts,
        display_name=display_name,
        allow_idp_initiated=allow_idp_initiated,
        idp_initiated_clients=tuple(targets),
        clock_skew_seconds=skew,
        subject_attribute=subject_attribute,
        email_domains=tuple(d.lower() for d in domains),
        insecure_allow_sha1_until=sha1_until,
        sign_requests=sign_requests,
        authn_request_binding=binding,
        scim_user_key=scim_user_key,
        security_events=security_events,
    )
