"""The metadata fetcher against a real HTTPS server, and pinned-key metadata signatures.

The server is a real ``ThreadingHTTPServer`` on 127.0.0.1 behind TLS with a throwaway CA made at
test time; the fetcher reaches it through the ``resolver`` argument (``metadata.test`` is not a
name the system can resolve), which is also how the address checks are exercised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask.testing import FlaskClient
from lxml import etree

from bridge import cli
from bridge.admin.access import AdminAccess
from bridge.config import Settings
from bridge.errors import ConfigError, Conflict, NotFound
from bridge.idps.fetch import FetchPolicy, fetch_metadata
from bridge.idps.fetch_addresses import non_public_reason
from bridge.idps.files import load_idp_directory
from bridge.idps.lifecycle import IdpAdmin
from bridge.idps.metadata_signature import verify_metadata_signature
from bridge.idps.registry import IdpRegistry
from bridge.idps.versions import MetadataVersions
from bridge.ip_forms import nat64_networks
from bridge.provisioning.security_events import SecurityEvents
from bridge.saml.metadata import parse_idp_metadata
from bridge.services import Services, build_services
from bridge.store.models import IdpRecord
from tests.conftest import MovableClock

METADATA = b'<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>'
ETAG = '"v1"'
LAST_MODIFIED = "Tue, 01 Jul 2025 10:00:00 GMT"
LIMIT = 64 * 1024


# --- a throwaway PKI --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca_file: str
    cert_file: str
    key_file: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_name = _name("metadata test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("metadata.test")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("metadata.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = Pki(str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key"))
    Path(files.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(files.key_file).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


# --- the server -------------------------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    # Join handler threads on close, so no test leaves a thread writing to a socket behind.
    daemon_threads = False

    def __init__(self, context: ssl.SSLContext, address: str = "127.0.0.1") -> None:
        super().__init__((address, 0), _Handler)
        # The handshake runs in the handler thread (see _Handler.setup), never in the accept loop.
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1  # every TCP connection, whether or not TLS then succeeds
        return True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-response is what half of these tests do


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(5)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = getattr(self, "route_" + self.path.strip("/").replace(".", "_").replace("-", "_"), None)
        if route is None:
            self.reply(404)
        else:
            route()

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_idp_xml(self) -> None:
        validators = {"ETag": ETAG, "Last_Modified": LAST_MODIFIED}
        if self.headers.get("If-None-Match") == ETAG:
            self.reply(304, **validators)
        else:
            self.reply(200, METADATA, Content_Type="application/samlmetadata+xml", **validators)

    def route_moved(self) -> None:
        self.reply(302, Location="https://elsewhere.test/idp.xml")

    def route_large_declared(self) -> None:
        # Announces far more than the limit and sends none of it: only the header can refuse it.
        self.send_response(200)
        self.send_header("Content-Length", str(100 * LIMIT))
        self.end_headers()
        self.server.stopping.wait(2)
        self.close_connection = True

    def route_large_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._flood(lambda data: b"%x\r\n%s\r\n" % (len(data), data))

    def route_large_unframed(self) -> None:
        # HTTP/1.0-style: no length, the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self._flood(lambda data: data)
        self.close_connection = True

    def _flood(self, frame: object) -> None:
        assert callable(frame)
        for _ in range(4 * LIMIT // 4096):
            self.wfile.write(frame(b"x" * 4096))
        # Then hold: a client that insisted on reading it all would sit here until it timed out.
        self.server.stopping.wait(3)

    def route_drip_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        self._drip(b"x")

    def route_drip_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        self._drip(b"a")

    def _drip(self, byte: bytes) -> None:
        # One byte every 50 ms: far inside any per-read timeout, forever unless the client quits.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.server.stopping.wait(0.05):
            self.wfile.write(byte)
        self.close_connection = True


@dataclass
class Running:
    server: _Server
    ca_file: str

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/idp.xml", host: str = "metadata.test") -> str:
        return f"https://{host}:{self.port}{path}"


@pytest.fixture
def server(pki: Pki) -> Iterator[Running]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    sni: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,func-returns-value]
    httpd = _Server(context)
    httpd.sni = sni  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Running(httpd, pki.ca_file)
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class Resolver:
    """Answers from a table (each name's answers in turn, the last one repeating) and records every
    question it is asked."""

    def __init__(self, **answers: list[str] | list[list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        key = host.replace(".", "_").replace("-", "_")
        if key not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.answers[key]
        if answers and isinstance(answers[0], list):
            count = sum(1 for call in self.calls if call[0] == host)
            return list(answers[min(count, len(answers)) - 1])
        return list(answers)  # type: ignore[arg-type]


def local(running: Running, **overrides: object) -> FetchPolicy:
    values: dict[str, object] = {"allow_private": True, "ca_bundle": running.ca_file}
    values.update(overrides)
    return FetchPolicy(**values)  # type: ignore[arg-type]


LOCAL = Resolver(metadata_test=["127.0.0.1"], other_test=["127.0.0.1"])


def refused(match: str) -> pytest.RaisesExc[ConfigError]:
    return pytest.raises(ConfigError, match=match)


# --- fetching ---------------------------------------------------------------------------------------

def test_fetches_the_body_with_its_validators(server: Running) -> None:
    fetched = fetch_metadata(server.url(), policy=local(server), resolver=LOCAL)
    assert (fetched.status, fetched.body) == (200, METADATA)
    assert (fetched.etag, fetched.last_modified) == (ETAG, LAST_MODIFIED)
    assert fetched.url == server.url()
    path, headers = server.server.requests[-1]
    assert path == "/idp.xml"
    assert headers["host"] == f"metadata.test:{server.port}"
    assert headers["accept-encoding"] == "identity"
    assert "if-none-match" not in headers
    assert server.server.sni == ["metadata.test"]  # type: ignore[attr-defined]


def test_a_conditional_request_answered_304_has_no_body(server: Running) -> None:
    fetched = fetch_metadata(server.url(), policy=local(server), resolver=LOCAL, etag=ETAG,
                             last_modified=LAST_MODIFIED)
    assert (fetched.status, fetched.body) == (304, None)
    assert (fetched.etag, fetched.last_modified) == (ETAG, LAST_MODIFIED)
    _, headers = server.server.requests[-1]
    assert headers["if-none-match"] == ETAG
    assert headers["if-modified-since"] == LAST_MODIFIED


def test_a_stale_validator_gets_the_new_body(server: Running) -> None:
    fetched = fetch_metadata(server.url(), policy=local(server), resolver=LOCAL, etag='"v0"')
    assert (fetched.status, fetched.body, fetched.etag) == (200, METADATA, ETAG)


def test_the_connection_goes_to_the_checked_address_without_asking_dns_again(server: Running) -> None:
    # The system cannot resolve metadata.test (RFC 6761 reserves .test): the request reaching the
    # server proves the fetcher connected to the address its resolver answered.
    try:
        socket.getaddrinfo("metadata.test", server.port)
    except socket.gaierror:
        pass
    else:
        pytest.skip("this machine's DNS answers for .test names")
    # A rebinding resolver: checked once as loopback (allowed here), then an internal address. The
    # second answer is never asked for, so it can never be connected to.
    rebinding = Resolver(metadata_test=[["127.0.0.1"], ["10.9.8.7"]])
    fetched = fetch_metadata(server.url(), policy=local(server), resolver=rebinding)
    assert fetched.body == METADATA
    assert rebinding.calls == [("metadata.test", server.port)]
    assert server.server.connections == 1


def test_the_system_resolver_is_the_default(server: Running) -> None:
    with refused("metadata_url: cannot resolve metadata.test"):
        fetch_metadata(server.url(), policy=local(server))
    assert server.server.connections == 0


def test_the_port_defaults_to_443() -> None:
    resolver = Resolver(metadata_test=["10.0.0.5"])
    with refused("has no public address") as caught:
        fetch_metadata("https://metadata.test/idp.xml", policy=FetchPolicy(), resolver=resolver)
    assert "10.0.0.5" not in str(caught.value)
    assert resolver.calls == [("metadata.test", 443)]


def test_a_redirect_is_refused_and_named(server: Running) -> None:
    with refused(r"metadata_url: .*302.*https://elsewhere\.test/idp\.xml.*configure the final URL"):
        fetch_metadata(server.url("/moved"), policy=local(server), resolver=LOCAL)
    assert [path for path, _ in server.server.requests] == ["/moved"]


def test_an_error_status_is_refused(server: Running) -> None:
    with refused("metadata_url: metadata.test answered HTTP 404"):
        fetch_metadata(server.url("/nothing-here"), policy=local(server), resolver=LOCAL)


def test_a_declared_length_over_the_limit_is_refused_before_reading(server: Running) -> None:
    started = time.monotonic()
    with refused(rf"metadata_url: .*announces {100 * LIMIT} bytes \(Content-Length\)"):
        fetch_metadata(server.url("/large-declared"), policy=local(server, max_bytes=LIMIT),
                       resolver=LOCAL)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("path", ["/large-chunked", "/large-unframed"])
def test_a_streamed_body_over_the_limit_is_cut_off(server: Running, path: str) -> None:
    # The server sends 4x the limit, then stalls: only stopping at the limit ends this quickly.
    started = time.monotonic()
    with refused(f"metadata_url: the response from metadata.test is larger than the {LIMIT} bytes"):
        fetch_metadata(server.url(path), policy=local(server, max_bytes=LIMIT), resolver=LOCAL)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_a_slow_drip_is_stopped_by_the_overall_deadline(server: Running, path: str) -> None:
    # Every byte arrives well within the read timeout; only the overall deadline (0.8 s) stops it.
    policy = local(server, connect_timeout=0.4, read_timeout=0.4)
    started = time.monotonic()
    with refused("metadata_url: metadata.test did not deliver the metadata within 0.8 seconds"):
        fetch_metadata(server.url(path), policy=policy, resolver=LOCAL)
    elapsed = time.monotonic() - started
    assert 0.7 < elapsed < 1.5


@pytest.mark.parametrize("url", [
    "http://metadata.test/idp.xml",
    "ftp://metadata.test/idp.xml",
    "file:///etc/passwd",
    "metadata.test/idp.xml",
    "https:///idp.xml",
    "https://metadata.test:99999/idp.xml",
    "https://metadata.test/idp.xml\r\nX-Injected: 1",
])
def test_only_https_urls_with_a_host_are_accepted(url: str) -> None:
    resolver = Resolver(metadata_test=["127.0.0.1"])
    with refused("metadata_url: "):
        fetch_metadata(url, policy=FetchPolicy(allow_private=True), resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("netloc", ["admin:hunter2@metadata.test", "admin@metadata.test",
                                    "@metadata.test", "metadata.test@evil.example"])
def test_a_url_with_user_info_is_refused_without_echoing_it(netloc: str) -> None:
    resolver = Resolver(metadata_test=["127.0.0.1"])
    with refused("metadata_url: the URL may not carry a user name or password") as caught:
        fetch_metadata(f"https://{netloc}/idp.xml", policy=FetchPolicy(allow_private=True),
                       resolver=resolver)
    assert "hunter2" not in str(caught.value)
    assert resolver.calls == []


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.5", "private"),
    ("192.168.1.10", "private"),
    ("172.16.0.1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("fd00::1", "private"),
    ("fec0::1", "site-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("100.64.0.1", "not globally routable"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "private|reserved"),
    ("2002:7f00:1::1", "6to4 form of loopback"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel"),
    ("64:ff9b::a00:5", "NAT64 form of private"),
    ("64:ff9b:1::a00:5", "local-use NAT64"),
])
def test_non_public_addresses_are_refused_before_connecting(
        server: Running, address: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    resolver = Resolver(metadata_test=[address])
    expected = (r"metadata_url: metadata\.test has no public address \(it does not resolve, or "
                r"resolves to a private or internal one\); metadata is only fetched from public "
                "addresses")
    with refused(expected) as caught, caplog.at_level(logging.WARNING, logger="bridge.idps.fetch"):
        fetch_metadata(server.url(), policy=FetchPolicy(ca_bundle=server.ca_file), resolver=resolver)
    # Which address the name has, and what kind, is the log's (the internal network's DNS is
    # not answered to whoever can type a metadata URL).
    shown = str(ipaddress.ip_address(address))
    assert address not in str(caught.value) and shown not in str(caught.value)
    assert re.search(rf"resolves to \S+ \(({reason})\)", caplog.text), caplog.text
    assert caught.value.log_detail["reason"] in caplog.text
    assert server.server.connections == 0
    assert len(resolver.calls) == 1


def test_one_non_public_address_among_public_ones_refuses_the_host(server: Running) -> None:
    resolver = Resolver(metadata_test=["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
                                       "127.0.0.1"])
    with refused("has no public address") as caught:
        fetch_metadata(server.url(), policy=FetchPolicy(ca_bundle=server.ca_file), resolver=resolver)
    assert "127.0.0.1" not in str(caught.value)
    assert caught.value.log_detail == {"host": "metadata.test", "address": "127.0.0.1",
                                       "reason": "loopback"}
    assert server.server.connections == 0


@pytest.mark.parametrize("answers", [None, [], ["not-an-address"]])
def test_a_name_without_an_answer_reads_as_one_with_a_private_address(
        server: Running, answers: list[str] | None, caplog: pytest.LogCaptureFixture) -> None:
    """Decision 28: "cannot resolve" against "resolves to a private address" would tell whoever
    can type a metadata URL which names the internal DNS knows. Both get one answer; the log
    says which it was."""
    private = Resolver(metadata_test=["10.1.2.3"])
    with refused("has no public address") as private_answer:
        fetch_metadata(server.url(), policy=FetchPolicy(ca_bundle=server.ca_file),
                       resolver=private)
    unknown = Resolver() if answers is None else Resolver(metadata_test=answers)
    with refused("has no public address") as unknown_answer, \
            caplog.at_level(logging.WARNING, logger="bridge.idps.fetch"):
        fetch_metadata(server.url(), policy=FetchPolicy(ca_bundle=server.ca_file),
                       resolver=unknown)
    assert (unknown_answer.value.code, unknown_answer.value.public_detail) == (
        private_answer.value.code, private_answer.value.public_detail)
    assert "resolve" in unknown_answer.value.log_detail
    assert "metadata.test" in caplog.text and "refused" in caplog.text
    assert server.server.connections == 0


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"])
def test_public_addresses_pass_the_check(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None


def test_allow_private_still_refuses_non_unicast_addresses(server: Running) -> None:
    with refused("resolves to an address that is not a unicast address") as caught:
        fetch_metadata(server.url(), policy=local(server), resolver=Resolver(metadata_test=["0.0.0.0"]))
    assert "0.0.0.0" not in str(caught.value)
    assert server.server.connections == 0


def test_a_certificate_for_another_name_is_refused(server: Running) -> None:
    with refused("metadata_url: TLS with other.test failed"):
        fetch_metadata(server.url(host="other.test"), policy=local(server), resolver=LOCAL)
    assert server.server.connections == 1
    assert server.server.requests == []


def test_a_certificate_from_an_untrusted_ca_is_refused(server: Running) -> None:
    # Without ca_bundle the fetcher trusts certifi's public CAs, which never signed the test CA.
    with refused("metadata_url: TLS with metadata.test failed"):
        fetch_metadata(server.url(), policy=FetchPolicy(allow_private=True), resolver=LOCAL)
    assert server.server.requests == []


def test_nothing_listening_is_a_clear_error(server: Running) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with refused(rf"metadata_url: could not connect to metadata\.test port {port} \(127\.0\.0\.1: "):
        fetch_metadata(f"https://metadata.test:{port}/idp.xml", policy=local(server), resolver=LOCAL)


def test_the_next_address_is_tried_when_one_cannot_be_connected(server: Running) -> None:
    # ::1 has nothing listening on this port (the server is IPv4 only); 127.0.0.1 answers.
    resolver = Resolver(metadata_test=["::1", "127.0.0.1"])
    fetched = fetch_metadata(server.url(), policy=local(server), resolver=resolver)
    assert fetched.body == METADATA


# --- metadata signatures ----------------------------------------------------------------------------

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True)
class Signer:
    key_pem: bytes
    cert_pem: str

    @property
    def cert_b64(self) -> str:
        return "".join(line for line in self.cert_pem.splitlines() if "CERTIFICATE" not in line)


def _signer(name: str) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return Signer(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()),
                  cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))


@pytest.fixture(scope="module")
def federation() -> Signer:
    return _signer("metadata signer")


@pytest.fixture(scope="module")
def stranger() -> Signer:
    return _signer("someone else")


def entity(signer: Signer, entity_id: str = "https://idp.example.org",
           id_: str = "_entity1") -> etree._Element:
    xml = f"""<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{entity_id}" ID="{id_}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{signer.cert_b64}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                            Location="{entity_id}/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""
    return etree.fromstring(xml.encode())


def sign(element: etree._Element, signer: Signer, *, uri: str | None = None,
         method: object = xmlsec.constants.TransformRsaSha256,
         digest: object = xmlsec.constants.TransformSha256) -> etree._Element:
    signature = xmlsec.template.create(element, xmlsec.constants.TransformExclC14N, method, ns="ds")
    element.insert(0, signature)
    reference = xmlsec.template.add_reference(
        signature, digest, uri="#" + element.get("ID", "") if uri is None else uri)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.template.x509_data_add_certificate(
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature)))
    context = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(signer.key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(signer.cert_pem, xmlsec.constants.KeyDataFormatPem)
    context.key = key
    xmlsec.tree.add_ids(element, ["ID"])
    context.sign(signature)
    return element


def text(element: etree._Element) -> bytes:
    return etree.tostring(element.getroottree(), xml_declaration=True, encoding="UTF-8")


def test_signed_metadata_verifies_with_the_pinned_certificate(federation: Signer) -> None:
    signed = text(sign(entity(federation), federation))
    verify_metadata_signature(signed, federation.cert_pem)
    # And the same bytes are usable metadata.
    metadata = parse_idp_metadata(signed, source="test", now=dt.datetime.now(dt.UTC))
    assert metadata.entity_id == "https://idp.example.org"


def test_a_long_prefix_list_in_metadata_is_refused_before_canonicalization(
        federation: Signer) -> None:
    """Whoever controls a metadata URL chooses the document the pinned check reads: a
    PrefixList of thousands costs seconds of canonicalization even unsigned by anyone."""
    signed = sign(entity(federation), federation)
    method = signed.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}CanonicalizationMethod")
    assert method is not None
    etree.SubElement(method, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                     PrefixList=" ".join(f"p{i}" for i in range(4000)))
    with pytest.raises(ConfigError, match="PrefixList may name at most 16 short prefixes"):
        verify_metadata_signature(text(signed), federation.cert_pem)


def _idp_files(directory: Path, xml: bytes, pinned: str) -> Path:
    directory.mkdir()
    (directory / "partner.xml").write_bytes(xml)
    (directory / "partner.toml").write_text(
        f'email_domains = ["example.org"]\nmetadata_signing_certificate = """{pinned}"""\n')
    return directory


def test_an_idp_file_is_loaded_when_the_pinned_certificate_signed_it(federation: Signer,
                                                                    tmp_path: Path) -> None:
    directory = _idp_files(tmp_path / "idps", text(sign(entity(federation), federation)),
                           federation.cert_pem)
    idps = load_idp_directory(directory, now=dt.datetime.now(dt.UTC))
    assert idps["partner"].metadata.entity_id == "https://idp.example.org"


@pytest.mark.parametrize("document", ["unsigned", "another key", "tampered"])
def test_an_idp_file_the_pinned_certificate_did_not_sign_is_refused(
        document: str, federation: Signer, stranger: Signer, tmp_path: Path) -> None:
    # An IdP declared as files pins the signer of its metadata as a managed one does: a file
    # synced from elsewhere (a federation's aggregate, automation) is trusted only if signed.
    xml = {"unsigned": lambda: text(entity(federation)),
           "another key": lambda: text(sign(entity(stranger), stranger)),
           "tampered": lambda: text(sign(entity(federation), federation)).replace(
               b'Location="https://idp.example.org/sso"', b'Location="https://evil.example/sso"'),
           }[document]()
    assert document != "tampered" or b"evil.example" in xml
    directory = _idp_files(tmp_path / "idps", xml, federation.cert_pem)
    with pytest.raises(ConfigError) as refusal:
        load_idp_directory(directory, now=dt.datetime.now(dt.UTC))
    assert len(refusal.value.problems) == 1
    assert refusal.value.problems[0].startswith(f"{directory / 'partner.xml'}: metadata signature: ")


def _signed_aggregate_with_an_idp_in_its_key_info(federation: Signer, stranger: Signer,
                                                  *, member_idp: bool) -> bytes:
    """An EntitiesDescriptor the pinned key really signed (SP entities only, or with one IdP
    member), and then an IdP entity of the stranger's put into the signature's KeyInfo, which
    its digest does not cover."""
    group = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD}, ID="_group")
    group.append(etree.fromstring(f"""<md:EntityDescriptor xmlns:md="{MD}"
        entityID="https://sp.example.org" ID="_sp"><md:SPSSODescriptor
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
        <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        Location="https://sp.example.org/acs" index="0"/></md:SPSSODescriptor>
        </md:EntityDescriptor>"""))
    if member_idp:
        group.append(entity(federation))
    signed = etree.fromstring(text(sign(group, federation)))
    key_info = signed.find(f"{{{DS}}}Signature/{{{DS}}}KeyInfo")
    assert key_info is not None
    key_info.append(entity(stranger, entity_id="https://partner.example.net", id_="_hidden"))
    xml = text(signed)
    verify_metadata_signature(xml, federation.cert_pem)  # the pinned signature still holds
    return xml


def test_an_idp_hidden_in_a_signatures_key_info_is_no_idp(federation: Signer, stranger: Signer,
                                                           tmp_path: Path) -> None:
    xml = _signed_aggregate_with_an_idp_in_its_key_info(federation, stranger, member_idp=False)
    with refused("an EntitiesDescriptor must hold exactly one IdP entity, found 0"):
        parse_idp_metadata(xml, source="test", now=dt.datetime.now(dt.UTC))
    directory = _idp_files(tmp_path / "idps", xml, federation.cert_pem)
    with pytest.raises(ConfigError, match="exactly one IdP entity, found 0"):
        load_idp_directory(directory, now=dt.datetime.now(dt.UTC))


def test_beside_a_member_idp_the_hidden_one_is_ignored(federation: Signer,
                                                       stranger: Signer) -> None:
    xml = _signed_aggregate_with_an_idp_in_its_key_info(federation, stranger, member_idp=True)
    metadata = parse_idp_metadata(xml, source="test", now=dt.datetime.now(dt.UTC))
    assert metadata.entity_id == "https://idp.example.org"
    assert [c.pem for c in metadata.signing_certificates] == [federation.cert_pem]


def _relabelled_with_a_second_reading(federation: Signer, stranger: Signer) -> bytes:
    """A real aggregate the pinned key signed, relabelled as GBK, with bytes outside the digest
    (in the signature's KeyInfo, in processing instructions after the root) that read one way
    as they are and another way once each byte that is not UTF-8 becomes U+FFFD: in the second
    reading the signature ends early and the stranger's entity is the aggregate's member."""
    ends_cdata_once_replaced, ends_cdata_as_is = b"\x81\xe0\xbd", b"\xe0\xa1"
    group = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD}, ID="_group")
    group.append(entity(federation, entity_id="https://partner.example.net"))
    raw = text(sign(group, federation)).replace(b"encoding='UTF-8'", b"encoding='GBK'")
    smuggled = (b"<ds:KeyName><![CDATA[" + ends_cdata_once_replaced
                + b"]]></ds:KeyName></ds:KeyInfo></ds:Signature>"
                + etree.tostring(entity(stranger, entity_id="https://partner.example.net",
                                        id_="_other"))
                + b"<![CDATA[" + ends_cdata_as_is + b"]]></ds:KeyName>")
    raw = raw.replace(b"</ds:KeyInfo>", smuggled + b"</ds:KeyInfo>", 1)
    raw += b"<?x " + ends_cdata_once_replaced + b"]]></md:EntitiesDescriptor><?y ?>"
    verify_metadata_signature(raw, federation.cert_pem)  # as it is, the pinned signature holds
    replaced = raw.decode("utf-8", errors="replace").encode()
    other = parse_idp_metadata(replaced, source="test", now=dt.datetime.now(dt.UTC))
    assert [c.pem for c in other.signing_certificates] == [stranger.cert_pem]  # the second reading
    return raw


def test_metadata_that_is_not_utf8_is_refused_before_it_can_be_read_twice(
        federation: Signer, stranger: Signer, bridge: Services) -> None:
    xml = _relabelled_with_a_second_reading(federation, stranger)
    admin = IdpAdmin(bridge, FetchPolicy())
    with refused("IdP partner metadata: not UTF-8"):
        admin.create_idp("partner", xml=xml, url=None, actor="test",
                         settings={"metadata_signing_certificate": federation.cert_pem})
    assert "partner" not in bridge.idps


def test_a_signed_entities_descriptor_verifies(federation: Signer) -> None:
    group = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD}, ID="_group")
    group.append(entity(federation))
    verify_metadata_signature(text(sign(group, federation)), federation.cert_pem)


def test_tampered_metadata_is_refused(federation: Signer) -> None:
    signed = text(sign(entity(federation), federation))
    tampered = signed.replace(b'Location="https://idp.example.org/sso"',
                              b'Location="https://evil.example/sso"')
    assert tampered != signed
    with refused("metadata signature: the signature does not verify with the pinned certificate"):
        verify_metadata_signature(tampered, federation.cert_pem)


def test_a_signature_by_another_key_is_refused(federation: Signer, stranger: Signer) -> None:
    # Signed by a stranger whose certificate travels in KeyInfo: the pinned certificate decides.
    signed = text(sign(entity(stranger), stranger))
    with refused("metadata signature: the signature does not verify with the pinned certificate"):
        verify_metadata_signature(signed, federation.cert_pem)


def test_unsigned_metadata_is_refused(federation: Signer) -> None:
    with refused("metadata signature: the metadata is not signed"):
        verify_metadata_signature(text(entity(federation)), federation.cert_pem)


def test_a_signature_only_on_an_inner_entity_is_refused(federation: Signer) -> None:
    group = etree.Element(f"{{{MD}}}EntitiesDescriptor", nsmap={"md": MD}, ID="_group")
    group.append(sign(entity(federation), federation))
    with refused("metadata signature: the metadata is not signed"):
        verify_metadata_signature(text(group), federation.cert_pem)


def test_a_whole_document_reference_is_refused(federation: Signer) -> None:
    signed = text(sign(entity(federation), federation, uri=""))
    with refused("metadata signature: The signature does not reference the element that carries it"):
        verify_metadata_signature(signed, federation.cert_pem)


def test_sha1_is_refused(federation: Signer) -> None:
    signed = text(sign(entity(federation), federation, method=xmlsec.constants.TransformRsaSha1,
                       digest=xmlsec.constants.TransformSha1))
    with refused("metadata signature: The signature algorithm is not accepted"):
        verify_metadata_signature(signed, federation.cert_pem)


def test_two_root_signatures_are_refused(federation: Signer) -> None:
    root = sign(entity(federation), federation)
    root.insert(1, etree.fromstring(etree.tostring(root[0])))
    with refused("metadata signature: the root element carries 2 signatures"):
        verify_metadata_signature(text(root), federation.cert_pem)


def test_a_duplicate_id_is_refused(federation: Signer) -> None:
    root = entity(federation)
    root[0].set("ID", "_entity1")
    with refused("metadata signature: Two elements share an ID"):
        verify_metadata_signature(text(sign(root, federation)), federation.cert_pem)


def test_a_root_without_id_is_refused(federation: Signer) -> None:
    root = entity(federation)
    del root.attrib["ID"]
    with refused("metadata signature: the root element has no ID"):
        verify_metadata_signature(text(root), federation.cert_pem)


def test_a_pinned_certificate_that_is_not_pem_is_refused(federation: Signer) -> None:
    signed = text(sign(entity(federation), federation))
    with refused("metadata signature: the pinned certificate is not a PEM X.509 certificate"):
        verify_metadata_signature(signed, "not a certificate")


def test_xml_with_a_dtd_is_refused(federation: Signer) -> None:
    with refused("metadata signature: DTDs and entity declarations are not allowed"):
        verify_metadata_signature(b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', federation.cert_pem)


# --- check_url ----------------------------------------------------------------------------------------

def test_check_url_accepts_what_the_fetcher_would_try() -> None:
    from bridge.idps.fetch import check_url

    check_url("https://idp.example.org/metadata.xml")
    check_url("https://idp.example.org:8443/federationmetadata/2007-06/federationmetadata.xml?x=1")
    for bad in ("http://idp.example.org/m.xml", "https://u:p@idp.example.org/m.xml", "https://"):
        with refused("metadata_url: "):
            check_url(bad)


def test_a_validator_with_a_line_break_is_refused() -> None:
    resolver = Resolver(metadata_test=["127.0.0.1"])
    with refused("metadata_url: the stored If-None-Match validator is not a valid header value"):
        fetch_metadata("https://metadata.test/idp.xml", policy=FetchPolicy(allow_private=True),
                       etag='"v1"\r\nX-Injected: 1', resolver=resolver)
    assert resolver.calls == []


# --- a pin and the version in force, each changed while the other's change was being checked ---

PARTNER = "https://partner.example.net"


def _partner_with_a_pending_unsigned_version(bridge: Services, federation: Signer,
                                             stranger: Signer, *, auto_apply: str
                                             ) -> tuple[IdpAdmin, bytes]:
    admin = IdpAdmin(bridge, FetchPolicy())
    admin.create_idp("partner", xml=text(sign(entity(federation, entity_id=PARTNER), federation)),
                     url=None, actor="test",
                     settings={"email_domains": ["example.org"], "metadata_auto_apply": auto_apply})
    # The stranger's key and another SSO URL, signed by no one.
    unsigned = text(entity(stranger, entity_id=PARTNER)).replace(
        b"https://partner.example.net/sso", b"https://partner.example.net/other-sso")
    return admin, unsigned


def _pinned(federation: Signer, auto_apply: str) -> dict[str, object]:
    return {"email_domains": ["example.org"], "metadata_auto_apply": auto_apply,
            "metadata_signing_certificate": federation.cert_pem}


def test_a_pin_is_not_saved_over_a_version_applied_while_it_was_checked(
        bridge: Services, federation: Signer, stranger: Signer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin, unsigned = _partner_with_a_pending_unsigned_version(bridge, federation, stranger,
                                                               auto_apply="none")
    pending = admin.propose_metadata("partner", xml=unsigned, actor="test")
    assert pending["status"] == "pending"
    checked_settings = IdpAdmin.checked_settings

    def another_admin_applies_meanwhile(self, slug, settings):  # type: ignore[no-untyped-def]
        checked = checked_settings(self, slug, settings)  # the pin holds for the signed version
        admin.apply_version(slug, pending["version"], actor="another admin")
        return checked

    monkeypatch.setattr(IdpAdmin, "checked_settings", another_admin_applies_meanwhile)
    with pytest.raises(Conflict) as refusal:
        admin.update_settings("partner", _pinned(federation, "none"), "test")
    assert refusal.value.code == "idp_pin_not_satisfied"
    monkeypatch.undo()
    in_force = bridge.idps["partner"]
    assert in_force.settings.metadata_signing_certificate is None  # nothing saved
    assert [c.pem for c in in_force.metadata.signing_certificates] == [stranger.cert_pem]


def test_a_refresh_validated_before_a_pin_is_not_applied_after_it(
        bridge: Services, federation: Signer, stranger: Signer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin, unsigned = _partner_with_a_pending_unsigned_version(bridge, federation, stranger,
                                                               auto_apply="all")
    validated = MetadataVersions._validated

    def an_admin_pins_meanwhile(self, slug, xml, settings_json):  # type: ignore[no-untyped-def]
        idp = validated(self, slug, xml, settings_json)
        if xml == unsigned and "metadata_signing_certificate" not in settings_json:
            admin.update_settings(slug, _pinned(federation, "all"), "an admin")
        return idp

    monkeypatch.setattr(MetadataVersions, "_validated", an_admin_pins_meanwhile)
    with pytest.raises(Conflict, match="pinned certificate does not sign"):
        admin.propose_metadata("partner", xml=unsigned, actor="scheduler")
    monkeypatch.undo()
    in_force = bridge.idps["partner"]
    assert in_force.settings.metadata_signing_certificate == federation.cert_pem
    assert [c.pem for c in in_force.metadata.signing_certificates] == [federation.cert_pem]


def test_a_pin_left_over_a_version_it_does_not_sign_is_not_served(
        bridge: Services, federation: Signer, stranger: Signer, client: FlaskClient,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """The state the two races above could leave before the writes checked the pin under the
    IdP's lock: a row whose pin never signed the version in force. The registry does not serve
    it; the same pin over a version it signed is served again."""
    admin, unsigned = _partner_with_a_pending_unsigned_version(bridge, federation, stranger,
                                                               auto_apply="none")
    signed_version = bridge.idps["partner"].version_id
    pending = admin.propose_metadata("partner", xml=unsigned, actor="test")
    admin.apply_version("partner", pending["version"], actor="test")
    assert "partner" in bridge.idps

    def written_directly(version_id: int | None) -> None:
        with bridge.db.transaction() as session:
            row = session.get(IdpRecord, "partner")
            assert row is not None
            row.settings_json = json.dumps(_pinned(federation, "none"))
            row.version_id = version_id
            row.updated_at = bridge.clock.now() + 1
        bridge.idps.invalidate()

    with caplog.at_level(logging.ERROR, logger="bridge.idps"):
        written_directly(pending["version"])
        assert "partner" not in bridge.idps
    assert any("partner" in r.getMessage() and "does not sign the metadata in force"
               in r.getMessage() for r in caplog.records)
    # Not served, but its admins see it, say so, and can mend it; nothing acts through it.
    # (A SCIM token issued while it was served is revoked below.)
    shown = admin.get_idp("partner")
    assert (shown["served"], shown["not_served_reason"], shown["source"],
            shown["settings"]["metadata_signing_certificate"]
            ) == (False, "metadata_pin_mismatch", "api", federation.cert_pem)
    assert [i["slug"] for i in admin.list_idps() if not i["served"]] == ["partner"]
    assert cli._idp_list(bridge) == 0  # `bridge idp list`
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert ("NOT SERVED: its pinned metadata signing certificate does not sign the metadata in "
            "force") in listed["partner"]
    assert "NOT SERVED" not in listed["dev"]
    with pytest.raises(NotFound):
        admin.idp("partner")  # what a test login or a claims preview would act through
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    session_id = access.claim_ticket(access.issue_ticket(subject="s", name="A", idp_slug="dev"))
    assert session_id is not None
    client.set_cookie("__Host-bridge-admin", session_id)
    page = client.get("/admin/idps/partner")
    assert page.status_code == 200
    assert 'id="not-served" data-reason="metadata_pin_mismatch"' in page.get_data(as_text=True)
    why = "its pinned metadata signing certificate does not sign the metadata in force"
    assert f"not served: {why}" in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/api/idps/partner/settings").status_code == 200
    assert client.get("/admin/idps/partner/test-login").status_code == 404
    assert client.get("/admin/api/idps/partner/test-login").get_json()["start_url"] is None
    assert "Live, but not served (above)" in page.get_data(as_text=True)
    assert "Live: offered to users." not in page.get_data(as_text=True)
    # Going live (without a test: none can pass) promises no logins while it is not served.
    with bridge.db.transaction() as session:
        row = session.get(IdpRecord, "partner")
        assert row is not None
        row.state, row.updated_at = "testing", bridge.clock.now() + 2
    bridge.idps.invalidate()
    csrf = access.authenticate_session(session_id).csrf_token  # type: ignore[union-attr]
    went = client.post("/admin/idps/partner/go-live",
                       data={"csrf_token": csrf, "without_test": "yes"})
    assert went.status_code == 303
    notice = client.get(went.headers["Location"]).get_data(as_text=True)
    assert f"Live, but not served: {why}. No user can log in" in notice
    assert "users can log in through it now" not in notice
    # Access is taken away at once, without mending the IdP first (which would make a leaked
    # token work again).
    revoked = client.delete("/admin/api/idps/partner/scim-token", headers={"X-CSRF-Token": csrf})
    assert revoked.status_code == 204
    assert client.delete("/admin/api/idps/nobody/scim-token",
                         headers={"X-CSRF-Token": csrf}).status_code == 404
    written_directly(signed_version)
    assert bridge.idps["partner"].settings.metadata_signing_certificate == federation.cert_pem
    mended = admin.get_idp("partner")
    assert (mended["served"], mended["not_served_reason"], mended["state"]) == (True, None, "live")
    assert "Live: offered to users." in client.get("/admin/idps/partner").get_data(as_text=True)


def test_an_admin_mends_an_idp_whose_pin_does_not_sign_its_metadata_by_changing_the_pin(
        bridge: Services, federation: Signer, stranger: Signer) -> None:
    """The federation rolled its key: a new document signed by the new key is refused under the
    old pin, so the pin itself must change, and the IdP is not served meanwhile."""
    admin, unsigned = _partner_with_a_pending_unsigned_version(bridge, federation, stranger,
                                                               auto_apply="none")
    admin.apply_version("partner", admin.propose_metadata("partner", xml=unsigned,
                                                          actor="test")["version"], actor="test")
    with bridge.db.transaction() as session:
        row = session.get(IdpRecord, "partner")
        assert row is not None
        row.settings_json = json.dumps(_pinned(federation, "none"))
        row.updated_at = bridge.clock.now() + 1
    bridge.idps.invalidate()
    assert "partner" not in bridge.idps
    fingerprint = admin.get_idp("partner")["settings_fingerprint"]
    assert fingerprint
    # A pin that does not sign the version in force either is refused...
    with pytest.raises(ConfigError, match="metadata_signing_certificate|signature"):
        admin.update_settings("partner", _pinned(_signer("another federation"), "none"), "test")
    assert "partner" not in bridge.idps
    # ...settings it does satisfy (here: no pin, the admin's choice) put it back in service.
    admin.update_settings("partner", {"email_domains": ["example.org"],
                                      "metadata_auto_apply": "none"}, "test")
    assert bridge.idps["partner"].settings.metadata_signing_certificate is None


# --- the operator's own NAT64 prefixes (the nat64_prefixes setting) -----------------------------

# A global prefix, as an operator's NAT64 gateway may use: unlisted, its addresses are ordinary
# public IPv6 addresses.
OPERATOR_NAT64 = "2600:1f00:64::/96"


@pytest.mark.parametrize(("address", "reason"), [
    ("2600:1f00:64::a00:5", "NAT64 form of private"),
    ("2600:1f00:64::a9fe:a9fe", "NAT64 form of link-local"),
    ("2600:1f00:64::7f00:1", "NAT64 form of loopback"),
])
def test_an_address_under_a_listed_nat64_prefix_is_judged_by_its_ipv4_address(
        address: str, reason: str) -> None:
    listed = nat64_networks((OPERATOR_NAT64,))
    assert non_public_reason(ipaddress.ip_address(address)) is None  # unlisted: public IPv6
    assert non_public_reason(ipaddress.ip_address(address), listed) == reason
    assert non_public_reason(ipaddress.ip_address("2600:1f00:64::808:808"), listed) is None


def test_a_metadata_host_on_a_listed_nat64_prefix_is_refused_before_connecting(
        server: Running) -> None:
    resolver = Resolver(metadata_test=["2600:1f00:64::a9fe:a9fe"])  # 169.254.169.254
    policy = FetchPolicy(ca_bundle=server.ca_file, nat64_prefixes=nat64_networks((OPERATOR_NAT64,)))
    with refused("has no public address") as caught:
        fetch_metadata(server.url(), policy=policy, resolver=resolver)
    assert caught.value.log_detail["reason"] == "NAT64 form of link-local"
    assert server.server.connections == 0


def test_the_fetches_follow_the_nat64_prefixes_setting(settings: Settings) -> None:
    listed = build_services(dataclasses.replace(settings, nat64_prefixes=(OPERATOR_NAT64,)),
                            MovableClock())
    try:
        assert MetadataVersions(listed).fetch_policy.nat64_prefixes == (
            ipaddress.IPv6Network(OPERATOR_NAT64),)
        assert SecurityEvents(listed).keys.policy.nat64_prefixes == (
            ipaddress.IPv6Network(OPERATOR_NAT64),)
    finally:
        listed.db.dispose()


def test_a_change_reaches_another_node_when_a_node_clock_ran_ahead(
        bridge: Services, federation: Signer, stranger: Signer) -> None:
    """A write by a node whose clock was a minute ahead leaves an IdP's ``updated_at`` in the
    future; a later change made at the right time (new metadata, as after a key leak) is still
    seen by every node within the recheck."""
    admin, unsigned = _partner_with_a_pending_unsigned_version(bridge, federation, stranger,
                                                               auto_apply="none")
    node_clock = MovableClock()
    other_node = IdpRegistry(bridge.db, node_clock, {})
    assert other_node["partner"].version_id == bridge.idps["partner"].version_id
    bridge.clock.advance(60)  # type: ignore[attr-defined]
    admin.create_draft("other", settings={"display_name": "Other"}, actor="a node ahead")
    bridge.clock.advance(-60)  # type: ignore[attr-defined]
    node_clock.advance(other_node.recheck_seconds)
    assert "partner" in other_node and "other" not in other_node  # a draft is not served
    applied = admin.apply_version(
        "partner", admin.propose_metadata("partner", xml=unsigned, actor="t")["version"],
        actor="t")
    node_clock.advance(other_node.recheck_seconds)
    assert other_node["partner"].version_id == applied["version_id"] == \
        bridge.idps["partner"].version_id
    assert [c.pem for c in other_node["partner"].metadata.signing_certificates] == [
        stranger.cert_pem]


def test_a_draft_is_not_served_and_says_nothing_of_clashes(
        bridge: Services, client: FlaskClient) -> None:
    admin = IdpAdmin(bridge, FetchPolicy())
    admin.create_draft("newco", settings={"display_name": "Newco"}, actor="test")
    assert admin.get_idp("newco")["served"] is False
    access = AdminAccess(bridge.db, bridge.clock, bridge.idps)
    session_id = access.claim_ticket(access.issue_ticket(subject="s", name="A", idp_slug="dev"))
    assert session_id is not None
    client.set_cookie("__Host-bridge-admin", session_id)
    page = client.get("/admin/idps/newco").get_data(as_text=True)
    assert 'id="state"' in page and 'id="not-served"' not in page
    assert "not served: see the log" not in client.get("/admin/").get_data(as_text=True)
