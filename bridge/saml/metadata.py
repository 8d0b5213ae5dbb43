"""IdP metadata: parse a SAML 2.0 ``EntityDescriptor`` into the facts the SP needs.

Parsing is strict and every refusal names the problem, so an admin can fix the file: no DTD, one
IdP descriptor, at least one usable signing certificate, an SSO endpoint we can send requests to,
and a document that has not expired (``validUntil``, SAML Metadata §2.3.1/§2.3.2/§2.4.1).

The document's own times travel with the facts: ``valid_until`` (the earliest ``validUntil`` on
the IdP's descriptor, its EntityDescriptor and every enclosing EntitiesDescriptor),
``cache_duration_seconds`` (the shortest ``cacheDuration`` there) and ``published_at`` (the MDRPI
``PublicationInfo/@creationInstant``). They decide when it must be fetched again and whether a
newer document really is newer (docs/decisions/0012-metadata-freshness.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree

from bridge.errors import ConfigError, SamlRejected
from bridge.saml import ns
from bridge.saml.xml_parser import parse_untrusted

MAX_METADATA_BYTES = 2 * 1024 * 1024
# SAML Metadata §2.3.2: entityID is a URI of at most 1024 characters.
MAX_ENTITY_ID_LENGTH = 1024
# SAML Metadata Extensions for Registration and Publication Information (MDRPI) §2.2.
MDRPI = "urn:oasis:names:tc:SAML:metadata:rpi"


@dataclass(frozen=True)
class SigningCertificate:
    pem: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256_fingerprint: str

    def is_current(self, now: dt.datetime) -> bool:
        return self.not_before <= now < self.not_after


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_redirect_url: str | None
    sso_post_url: str | None
    signing_certificates: tuple[SigningCertificate, ...]
    nameid_formats: tuple[str, ...]
    want_authn_requests_signed: bool
    slo_redirect_url: str | None = None
    # SingleLogoutService with the HTTP-POST binding, and where each binding wants our
    # LogoutResponses when that differs from its Location (ResponseLocation, SAML Metadata §2.2.2).
    slo_post_url: str | None = None
    slo_redirect_response_url: str | None = None
    slo_post_response_url: str | None = None
    # The document's own times (see the module docstring); None when it carries none.
    valid_until: dt.datetime | None = None
    cache_duration_seconds: int | None = None
    published_at: dt.datetime | None = None

    def expired(self, now: dt.datetime) -> bool:
        """SAML Metadata §2.3.1: past ``validUntil`` the document may no longer be used."""
        return self.valid_until is not None and self.valid_until <= now


_HTML_START = re.compile(rb"(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>])",
                         re.DOTALL)


def looks_like_html(data: bytes) -> bool:
    """An HTML page where metadata was expected: what a sign-in page, a portal or a "download"
    page serves. Told apart before the XML rules, whose refusal (no DTDs) would say nothing."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return _HTML_START.match(head) is not None


def member_entities(group: etree._Element) -> list[etree._Element]:
    """The entities of an EntitiesDescriptor: its EntityDescriptor children and those of the
    EntitiesDescriptors nested in it, nothing deeper. An entity anywhere else (inside the
    signature's KeyInfo, which its digest does not cover, or in an Extensions element) is no
    member: found by a search of the whole tree, one put into a signed aggregate's KeyInfo was
    taken as the IdP, with the pinned signature still valid."""
    members: list[etree._Element] = []
    groups = [group]
    while groups:
        for child in groups.pop():
            if child.tag == f"{{{ns.MD}}}EntityDescriptor":
                members.append(child)
            elif child.tag == f"{{{ns.MD}}}EntitiesDescriptor":
                groups.append(child)
    return members


def parse_idp_metadata(data: bytes, *, source: str, now: dt.datetime,
                       check_expiry: bool = True) -> IdpMetadata:
    """Parse metadata bytes; raise ``ConfigError`` naming ``source`` and the problem.

    ``check_expiry`` refuses metadata past its ``validUntil`` or whose certificates have all
    expired: right for a new document, wrong for reloading one that was accepted before (it is
    then reported, and an expired document is refused where it would be used)."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{source}: {problem}")

    if looks_like_html(data):
        raise fail("this is an HTML page, not SAML metadata (a sign-in or download page?); "
                   "save the metadata XML itself, or give the URL that serves it")
    try:
        root = parse_untrusted(data, max_bytes=MAX_METADATA_BYTES, allow_comments=True,
                               kind="metadata")
    except SamlRejected as exc:
        parser = exc.log_detail.get("parser")
        raise fail(exc.public_detail.removesuffix(".") + f" ({parser})." if parser
                   else exc.public_detail) from None

    if root.tag == f"{{{ns.MD}}}EntitiesDescriptor":
        candidates = [e for e in member_entities(root)
                      if e.find(f"{{{ns.MD}}}IDPSSODescriptor") is not None]
        if len(candidates) != 1:
            raise fail(f"an EntitiesDescriptor must hold exactly one IdP entity, found "
                       f"{len(candidates)}; save the one entity you want as its own file")
        root = candidates[0]
    if root.tag != f"{{{ns.MD}}}EntityDescriptor":
        raise fail(f"the root element must be md:EntityDescriptor, found {_local(root.tag)}")
    entity_id = (root.get("entityID") or "").strip()
    if not entity_id:
        raise fail("md:EntityDescriptor has no entityID")
    if len(entity_id) > MAX_ENTITY_ID_LENGTH:
        raise fail(f"the entityID is {len(entity_id)} characters long; SAML allows at most "
                   f"{MAX_ENTITY_ID_LENGTH}")
    descriptors = root.findall(f"{{{ns.MD}}}IDPSSODescriptor")
    if len(descriptors) != 1:
        raise fail(f"expected one md:IDPSSODescriptor, found {len(descriptors)}")
    idp = descriptors[0]
    if ns.SAMLP not in (idp.get("protocolSupportEnumeration") or "").split():
        raise fail("md:IDPSSODescriptor does not list the SAML 2.0 protocol in "
                   "protocolSupportEnumeration")

    # Every endpoint we may send a browser or a message to, before anything else reads it: a
    # control character or space inside one (an encoded newline, &#10;) is dropped by urlsplit,
    # so it passed the checks below and then broke the Location header it was written into.
    for kind in ("SingleSignOnService", "SingleLogoutService"):
        for service in idp.findall(f"{{{ns.MD}}}{kind}"):
            if service.get("Binding") not in (ns.BINDING_REDIRECT, ns.BINDING_POST):
                continue
            for attribute in ("Location", "ResponseLocation"):
                value = (service.get(attribute) or "").strip()
                if not plain_url_text(value):
                    raise fail(f"{kind} {attribute} {value[:200]!r} is not an http(s) URL: "
                               "it contains a control character, a space or a non-ASCII "
                               "character (a URL has those percent-encoded)")

    redirect_url = post_url = None
    for service in idp.findall(f"{{{ns.MD}}}SingleSignOnService"):
        binding, location = service.get("Binding"), (service.get("Location") or "").strip()
        if binding == ns.BINDING_REDIRECT and location and redirect_url is None:
            redirect_url = location
        elif binding == ns.BINDING_POST and location and post_url is None:
            post_url = location
    for url in (redirect_url, post_url):
        if url is not None and not _http_url(url):
            raise fail(f"SingleSignOnService Location {url!r} is not an http(s) URL")
    if redirect_url is None and post_url is None:
        raise fail("md:IDPSSODescriptor has no SingleSignOnService with the HTTP-Redirect or "
                   "HTTP-POST binding")

    certificates: list[SigningCertificate] = []
    for index, key in enumerate(idp.findall(f"{{{ns.MD}}}KeyDescriptor")):
        if key.get("use") not in (None, "signing"):
            continue
        for cert_el in key.iter(f"{{{ns.DS}}}X509Certificate"):
            certificates.append(_certificate(cert_el.text or "", f"KeyDescriptor[{index}]", fail))
    if not certificates:
        raise fail("md:IDPSSODescriptor has no signing certificate "
                   "(KeyDescriptor use=\"signing\" with ds:X509Certificate)")
    valid_until, valid_until_on, cache_duration, published_at = _document_times(root, idp, fail)
    if check_expiry and valid_until is not None and valid_until <= now:
        raise ConfigError(f"{source}: the metadata expired at {valid_until:%Y-%m-%dT%H:%M:%SZ} "
                          f"(validUntil on md:{valid_until_on}); get a current document from the "
                          "IdP or its federation", code="idp_metadata_expired")
    if check_expiry and not any(c.not_after > now for c in certificates):
        latest = max(c.not_after for c in certificates)
        raise fail(f"every signing certificate has expired (latest expired {latest:%Y-%m-%d}); "
                   "ask the IdP admin for current metadata")

    # The first usable SingleLogoutService of each binding we send logout messages with.
    slo: dict[str, tuple[str, str | None]] = {}
    for service in idp.findall(f"{{{ns.MD}}}SingleLogoutService"):
        binding = service.get("Binding") or ""
        location = (service.get("Location") or "").strip()
        response_location = (service.get("ResponseLocation") or "").strip() or None
        if (binding in (ns.BINDING_REDIRECT, ns.BINDING_POST) and binding not in slo
                and _secure_or_loopback(location)
                and (response_location is None or _secure_or_loopback(response_location))):
            slo[binding] = (location, response_location)
    slo_redirect, slo_post = slo.get(ns.BINDING_REDIRECT), slo.get(ns.BINDING_POST)
    formats = tuple((f.text or "").strip() for f in idp.findall(f"{{{ns.MD}}}NameIDFormat"))
    return IdpMetadata(
        entity_id=entity_id,
        sso_redirect_url=redirect_url,
        sso_post_url=post_url,
        signing_certificates=tuple(_unique(certificates)),
        nameid_formats=tuple(f for f in formats if f),
        want_authn_requests_signed=idp.get("WantAuthnRequestsSigned") in ("true", "1"),
        slo_redirect_url=slo_redirect[0] if slo_redirect else None,
        slo_post_url=slo_post[0] if slo_post else None,
        slo_redirect_response_url=slo_redirect[1] if slo_redirect else None,
        slo_post_response_url=slo_post[1] if slo_post else None,
        valid_until=valid_until,
        cache_duration_seconds=cache_duration,
        published_at=published_at,
    )


def _document_times(entity: etree._Element, descriptor: etree._Element,
                    fail: Callable[[str], ConfigError]
                    ) -> tuple[dt.datetime | None, str, int | None, dt.datetime | None]:
    """validUntil and cacheDuration apply to an element and everything it contains (SAML Metadata
    §2.3.1), so the IdP's descriptor, its EntityDescriptor and every enclosing EntitiesDescriptor
    bound it: the earliest expiry and the shortest cache duration win."""
    scopes = [descriptor, entity, *entity.iterancestors(f"{{{ns.MD}}}EntitiesDescriptor")]
    valid_until: dt.datetime | None = None
    valid_until_on = ""
    cache: int | None = None
    for element in scopes:
        where = _local(element.tag)
        value = element.get("validUntil")
        if value is not None:
            moment = _datetime(value)
            if moment is None:
                raise fail(f"md:{where} validUntil {value[:64]!r} is not an xs:dateTime")
            if valid_until is None or moment < valid_until:
                valid_until, valid_until_on = moment, where
        value = element.get("cacheDuration")
        if value is not None:
            seconds = _duration_seconds(value)
            if seconds is None:
                raise fail(f"md:{where} cacheDuration {value[:64]!r} is not an xs:duration")
            cache = seconds if cache is None else min(cache, seconds)
    published_at = None
    for element in (entity, *entity.iterancestors(f"{{{ns.MD}}}EntitiesDescriptor")):
        info = element.find(f"{{{ns.MD}}}Extensions/{{{MDRPI}}}PublicationInfo")
        if info is not None and info.get("creationInstant") is not None:
            value = info.get("creationInstant", "")
            published_at = _datetime(value)
            if published_at is None:
                raise fail(f"mdrpi:PublicationInfo creationInstant {value[:64]!r} is not an "
                           "xs:dateTime")
            break  # the innermost publication statement describes this entity
    return valid_until, valid_until_on, cache, published_at


def _datetime(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
        # SAML Core §1.3.3: times are UTC; a missing zone means UTC.
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: a time that is past year 9999 in UTC
        return None


_DURATION = re.compile(r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?"
                       r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


# What a longer cacheDuration counts as: a century, which is "keep it" for any reader.
LONGEST_DURATION_SECONDS = 100 * 365 * 86400


def _duration_seconds(value: str) -> int | None:
    """An xs:duration in whole seconds (a year counted as 365 days, a month as 30), at most
    ``LONGEST_DURATION_SECONDS``; negative durations count as zero. None if it is not an
    xs:duration."""
    text = value.strip()
    match = _DURATION.match(text)
    if match is None or text.endswith(("P", "T")):
        return None
    if match.group(1):
        return 0
    # xs:duration has no bound, but Python's int() of a long digit string does (leading zeros
    # included), and float() overflows: each part without its leading zeros, at most 12 digits.
    parts = [(part or "0").lstrip("0") or "0" for part in match.groups()[1:]]
    if any(len(part.split(".")[0]) > 12 for part in parts):
        return LONGEST_DURATION_SECONDS
    years, months, days, hours, minutes = (int(part) for part in parts[:5])
    seconds = float(parts[5] if not parts[5].startswith(".") else "0" + parts[5])
    total = (years * 365 * 86400 + months * 30 * 86400 + days * 86400 + hours * 3600
             + minutes * 60 + seconds)
    return min(int(total), LONGEST_DURATION_SECONDS)


def _certificate(text: str, where: str, fail) -> SigningCertificate:
    compact = "".join(text.split())
    try:
        der = base64.b64decode(compact, validate=True)
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise fail(f"{where}: the ds:X509Certificate is not a valid base64 DER certificate "
                   f"({exc})") from None
    lines = [compact[i : i + 64] for i in range(0, len(compact), 64)]
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    return SigningCertificate(
        pem=pem,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def _unique(certs: list[SigningCertificate]) -> list[SigningCertificate]:
    seen: set[str] = set()
    out = []
    for cert in certs:
        if cert.sha256_fingerprint not in seen:
            seen.add(cert.sha256_fingerprint)
            out.append(cert)
    return out


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else str(tag)


# A host name or an IP address, and a port: what a URL we send browsers to may name. Nothing
# else, so that the origin can be written into a Content-Security-Policy (the auto-submitting
# form of the HTTP-POST binding) without ever ending or adding a directive.
_NETLOC = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                     r"(?::[0-9]{1,5})?")


def plain_url_text(url: str) -> bool:
    """Only printable ASCII and no space (RFC 3986 §2: anything else in a URI is
    percent-encoded): what can go into an HTTP header, an XML attribute or a CSP unchanged."""
    return all("!" <= c <= "~" for c in url)


def _http_url(url: str) -> bool:
    if not plain_url_text(url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and bool(_NETLOC.fullmatch(parts.netloc))


def _secure_or_loopback(url: str) -> bool:
    if not _http_url(url):
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in ("127.0.0.1", "localhost", "::1")
