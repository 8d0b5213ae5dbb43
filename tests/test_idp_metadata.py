"""IdP metadata and settings files: accepted when sound, refused with the file and the problem."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bridge.errors import ConfigError
from bridge.idps.files import load_idp_directory
from bridge.saml.metadata import LONGEST_DURATION_SECONDS

NOW = dt.datetime.now(dt.UTC)


def certificate(days_valid: int = 365, *, expired: bool = False) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    start = NOW - dt.timedelta(days=400 if expired else 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days_valid))
            .sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def metadata(*certs: str, entity_id: str = "https://idp.example.org", sso: bool = True,
             descriptor: bool = True, use: str = "signing") -> str:
    keys = "".join(
        f'<md:KeyDescriptor use="{use}"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>" for c in certs)
    service = ('<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
               'Location="https://idp.example.org/sso"/>') if sso else ""
    body = (f'<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            f"{keys}{service}</md:IDPSSODescriptor>") if descriptor else ""
    return ('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">{body}'
            "</md:EntityDescriptor>")


def dated(text: str, **attributes: str) -> str:
    """``text`` with attributes on its EntityDescriptor (validUntil, cacheDuration)."""
    extra = " ".join(f'{name}="{value}"' for name, value in attributes.items())
    return text.replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {extra} ", 1)


def grouped(text: str, valid_until: str) -> str:
    """``text`` inside an EntitiesDescriptor with this validUntil."""
    return (f'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'validUntil="{valid_until}">{text}</md:EntitiesDescriptor>')


PAST = (NOW - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
FUTURE = (NOW + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(tmp_path: Path, files: dict[str, str]) -> dict:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return load_idp_directory(tmp_path, now=NOW)


def test_sound_metadata_loads_with_every_signing_certificate(tmp_path: Path) -> None:
    idps = load(tmp_path, {"corp.xml": metadata(certificate(), certificate())})
    idp = idps["corp"]
    assert idp.metadata.entity_id == "https://idp.example.org"
    assert idp.metadata.sso_redirect_url == "https://idp.example.org/sso"
    assert len(idp.metadata.signing_certificates) == 2  # rollover: both trusted
    assert idp.settings.clock_skew_seconds == 60
    assert idp.settings.allow_idp_initiated is False


def test_settings_file_is_read(tmp_path: Path) -> None:
    idps = load(tmp_path, {"corp.xml": metadata(certificate()),
                           "corp.toml": 'clock_skew_seconds = 120\ndisplay_name = "Corp"\n'})
    assert idps["corp"].settings.clock_skew_seconds == 120
    assert idps["corp"].display_name == "Corp"


@pytest.mark.parametrize("text,problem", [
    ("<md:EntityDescriptor", "not well-formed"),
    (metadata(certificate(), descriptor=False), "expected one md:IDPSSODescriptor, found 0"),
    (metadata(), "no signing certificate"),
    (metadata(certificate(), use="encryption"), "no signing certificate"),
    (metadata(certificate(days_valid=30, expired=True)), "every signing certificate has expired"),
    (metadata(certificate(), sso=False), "no SingleSignOnService"),
    (metadata("bm90IGEgY2VydA=="), "not a valid base64 DER certificate"),
    (metadata(certificate(), entity_id=""), "has no entityID"),
    ('<?xml version="1.0"?><!DOCTYPE md [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     + metadata(certificate()), "DTDs and entity declarations are not allowed"),
    # SAML Metadata §2.3.1: past validUntil, the document (and all it contains) is not used.
    (dated(metadata(certificate()), validUntil=PAST),
     f"the metadata expired at {PAST} (validUntil on md:EntityDescriptor)"),
    (grouped(dated(metadata(certificate()), validUntil=FUTURE), PAST),
     f"the metadata expired at {PAST} (validUntil on md:EntitiesDescriptor)"),
    (dated(metadata(certificate()), validUntil="next week"),
     "validUntil 'next week' is not an xs:dateTime"),
    (dated(metadata(certificate()), cacheDuration="6 hours"),
     "cacheDuration '6 hours' is not an xs:duration"),
    (metadata(certificate(), entity_id="https://idp.example.org/" + "x" * 1001),
     "the entityID is 1025 characters long; SAML allows at most 1024"),
], ids=lambda value: value.replace(PAST, "PAST") if str(value).startswith("the metadata expired")
   else None)  # IDs without the time: pytest-xdist's workers must collect the same ones
def test_bad_metadata_is_refused_naming_file_and_problem(tmp_path: Path, text: str,
                                                          problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"corp.xml": text})
    message = str(caught.value)
    assert str(tmp_path / "corp.xml") in message
    assert problem in message


def _valid_until(text: str, value: str, element: str = "md:EntityDescriptor") -> str:
    return text.replace(f"<{element} ", f'<{element} validUntil="{value}" ', 1)


@pytest.mark.parametrize("element", ["md:EntityDescriptor", "md:IDPSSODescriptor"])
def test_metadata_past_its_valid_until_is_refused(tmp_path: Path, element: str) -> None:
    # SAML Metadata §2.3.2, §2.4.1: the document says how long it may be used.
    past = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(ConfigError, match=r"the metadata expired at .* \(validUntil on md:"):
        load(tmp_path, {"corp.xml": _valid_until(metadata(certificate()), past, element)})


@pytest.mark.parametrize("value", [(NOW + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   (NOW + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%f"),
                                   (NOW + dt.timedelta(hours=2)).isoformat()],
                         ids=["utc", "no-zone", "offset"])
def test_metadata_within_its_valid_until_is_accepted(tmp_path: Path, value: str) -> None:
    idps = load(tmp_path, {"corp.xml": _valid_until(metadata(certificate()), value)})
    assert idps["corp"].metadata.entity_id == "https://idp.example.org"


def test_a_valid_until_that_is_no_time_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="validUntil 'tomorrow' is not an xs:dateTime"):
        load(tmp_path, {"corp.xml": _valid_until(metadata(certificate()), "tomorrow")})


def test_the_documents_own_dates_are_read(tmp_path: Path) -> None:
    idps = load(tmp_path, {"corp.xml": grouped(dated(metadata(certificate()), validUntil=FUTURE,
                                                      cacheDuration="P1DT2H30M"),
                                                "2999-01-01T00:00:00Z")})
    found = idps["corp"].metadata
    assert found.valid_until.strftime("%Y-%m-%dT%H:%M:%SZ") == FUTURE  # the earliest one
    assert found.cache_duration_seconds == 86400 + 2 * 3600 + 30 * 60
    assert found.published_at is None


@pytest.mark.parametrize("duration", [
    "PT" + "9" * 400 + "S",       # a float of it is infinite
    "PT" + "9" * 5000 + "S",      # more digits than int() converts
    "P" + "9" * 20 + "Y",
    "P200Y",
])
def test_a_cache_duration_of_any_length_counts_as_a_century_at_most(tmp_path: Path,
                                                                  duration: str) -> None:
    idps = load(tmp_path, {"corp.xml": dated(metadata(certificate()), cacheDuration=duration)})
    assert idps["corp"].metadata.cache_duration_seconds == LONGEST_DURATION_SECONDS


def test_leading_zeros_do_not_lengthen_a_cache_duration(tmp_path: Path) -> None:
    idps = load(tmp_path, {"corp.xml": dated(metadata(certificate()),
                                             cacheDuration="P0000000000001YT00000000000000002S")})
    assert idps["corp"].metadata.cache_duration_seconds == 365 * 86400 + 2
    # More zeros than int() reads from a string.
    padded = load(tmp_path, {"corp.xml": dated(metadata(certificate()),
                                               cacheDuration="P" + "0" * 5000 + "1D")})
    assert padded["corp"].metadata.cache_duration_seconds == 86400


def test_expired_certificate_beside_a_current_one_is_accepted(tmp_path: Path) -> None:
    idps = load(tmp_path, {"corp.xml": metadata(certificate(days_valid=30, expired=True),
                                                certificate())})
    assert len(idps["corp"].metadata.signing_certificates) == 2


@pytest.mark.parametrize("toml,problem", [
    ("clock_skew_seconds = 301", "clock_skew_seconds: must be an integer from 0 to 300"),
    ("allow_idp_initiated = 'yes'", "allow_idp_initiated: must be true or false"),
    ("colour = 1", "colour: unknown IdP setting"),
    ("insecure_allow_sha1_until = 'soon'", "insecure_allow_sha1_until: must be a TOML date"),
    ("x = [", "not valid TOML"),
])
def test_bad_settings_are_refused(tmp_path: Path, toml: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"corp.xml": metadata(certificate()), "corp.toml": toml})
    assert str(tmp_path / "corp.toml") in str(caught.value)
    assert problem in str(caught.value)


def test_bad_file_names_and_duplicate_entity_ids(tmp_path: Path) -> None:
    cert = certificate()
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"Bad_Name.xml": metadata(cert), "a.xml": metadata(cert),
                        "b.xml": metadata(cert), "orphan.toml": ""})
    text = str(caught.value)
    assert "Bad_Name.xml: the file name must be a slug" in text
    assert "is already used by a.xml" in text
    assert "orphan.toml: settings without metadata" in text


@pytest.mark.slow  # starts a process
def test_bad_metadata_stops_start_up_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "idp").mkdir()
    (tmp_path / "idp" / "corp.xml").write_text(metadata())
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "check"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"BRIDGE_IDP_METADATA_DIR": str(tmp_path / "idp"), "PATH": "/usr/bin:/bin",
             "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance")},
    )
    assert result.returncode == 2
    assert "corp.xml" in result.stderr and "no signing certificate" in result.stderr


@pytest.mark.slow  # starts a process
def test_an_expired_metadata_file_stops_start_up_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "idp").mkdir()
    (tmp_path / "idp" / "corp.xml").write_text(dated(metadata(certificate()), validUntil=PAST))
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bridge.cli", "check"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"BRIDGE_IDP_METADATA_DIR": str(tmp_path / "idp"), "PATH": "/usr/bin:/bin",
             "BRIDGE_INSTANCE_DIR": str(tmp_path / "instance")},
    )
    assert result.returncode == 2
    assert f"{tmp_path / 'idp' / 'corp.xml'}: the metadata expired at {PAST}" in result.stderr


def test_a_mapping_pattern_the_linear_engine_cannot_run_stops_start_up(tmp_path: Path) -> None:
    # Lookaround would need a backtracking engine: refused when the file is read, naming the rule.
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"corp.xml": metadata(certificate()), "corp.toml":
                        "[[mapping.roles]]\nregex = '(?!guest-).*-admins'\nrole = \"admin\"\n"})
    assert any("corp.toml: mapping.roles[0].regex: not a valid regular expression" in p
               for p in caught.value.problems), caught.value.problems


def _with_services(text: str, services: str) -> str:
    return text.replace("</md:IDPSSODescriptor>", services + "</md:IDPSSODescriptor>", 1)


REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def test_single_logout_services_of_both_bindings_and_their_response_locations(
        tmp_path: Path) -> None:
    text = _with_services(metadata(certificate()), (
        f'<md:SingleLogoutService Binding="{POST}" Location="https://idp.example.org/slo/post" '
        'ResponseLocation="https://idp.example.org/slo/post-responses"/>'
        f'<md:SingleLogoutService Binding="{REDIRECT}" Location="http://idp.example.org/insecure"/>'
        f'<md:SingleLogoutService Binding="{REDIRECT}" Location="https://idp.example.org/slo"/>'))
    md = load(tmp_path, {"corp.xml": text})["corp"].metadata
    # A plain-http Single Logout endpoint (not loopback) is skipped, as before.
    assert (md.slo_redirect_url, md.slo_redirect_response_url) == ("https://idp.example.org/slo",
                                                                   None)
    assert (md.slo_post_url, md.slo_post_response_url) == (
        "https://idp.example.org/slo/post", "https://idp.example.org/slo/post-responses")


@pytest.mark.parametrize("location", [
    "https://idp.example.org;script-src 'unsafe-inline'/sso",  # would end up in a CSP
    "https://idp example.org/sso",
    "https://user:password@idp.example.org/sso",
    "javascript:alert(1)",
])
def test_an_sso_location_that_is_not_a_plain_http_url_is_refused(tmp_path: Path,
                                                                 location: str) -> None:
    text = metadata(certificate()).replace("https://idp.example.org/sso", location)
    with pytest.raises(ConfigError, match="is not an http\\(s\\) URL"):
        load(tmp_path, {"corp.xml": text})


@pytest.mark.parametrize("settings,problem", [
    ('sign_requests = "sometimes"', "sign_requests: one of auto, always, never"),
    ('authn_request_binding = "soap"', "authn_request_binding: one of auto, redirect, post"),
    ('authn_request_binding = "post"', 'authn_request_binding is "post" but the IdP\'s metadata '
                                       "has no SingleSignOnService with the HTTP-POST binding"),
])
def test_request_signing_and_binding_settings_are_checked_at_start_up(
        tmp_path: Path, settings: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"corp.xml": metadata(certificate()), "corp.toml": settings})
    assert f"corp.toml: {problem}" in str(caught.value)


def test_request_signing_follows_the_setting_and_the_idps_metadata(tmp_path: Path) -> None:
    wants = metadata(certificate()).replace("<md:IDPSSODescriptor ",
                                            '<md:IDPSSODescriptor WantAuthnRequestsSigned="true" ')
    cases = {"auto-wants": (wants, ""), "auto": (metadata(certificate()), ""),
             "always": (metadata(certificate()), 'sign_requests = "always"'),
             "never": (wants, 'sign_requests = "never"')}
    for slug, (text, settings) in cases.items():
        (tmp_path / f"{slug}.xml").write_text(text.replace("idp.example.org\"", f"{slug}\""))
        (tmp_path / f"{slug}.toml").write_text(settings)
    idps = load_idp_directory(tmp_path, now=NOW)
    assert {slug: (idp.signs_authn_requests, idp.signs_logout_messages)
            for slug, idp in idps.items()} == {
        "auto-wants": (True, True), "auto": (False, True), "always": (True, True),
        "never": (False, False)}
