"""Fetch IdP metadata from a URL an admin typed, without turning the bridge into a proxy (SSRF).

* https only, no user info in the URL;
* the host is resolved once and every address must be public (unless the policy allows private
  ones); the connection then goes to that checked address itself, so a second DNS answer cannot
  rebind the name to an internal address between the check and the connect;
* TLS is verified against the URL's host name (SNI and certificate), not against the address;
* redirects are refused, not followed (a redirect could point anywhere; the admin configures the
  final URL instead);
* the body is streamed under a byte limit, and the whole exchange under one wall-clock deadline,
  because per-operation timeouts alone let a server that drips one byte at a time hold us forever.

Every refusal is a ``FetchRefused`` whose message starts with ``metadata_url:``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError, SSLError
from urllib3.response import BaseHTTPResponse

from bridge.errors import FetchRefused

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CHUNK = 64 * 1024
_USER_AGENT = "saml-jwt-bridge metadata fetcher"
_ACCEPT = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"
# RFC 6052 well-known NAT64 prefix: the embedded IPv4 address is where the packet really goes.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: translates into the operator's own network.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 2 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    ca_bundle: str | None = None  # None: certifi's bundle


@dataclass(frozen=True)
class Fetched:
    status: int  # 200 or 304
    body: bytes | None  # None on 304
    etag: str | None
    last_modified: str | None
    url: str


def fetch_metadata(
    url: str,
    *,
    policy: FetchPolicy,
    etag: str | None = None,
    last_modified: str | None = None,
    resolver: Resolver | None = None,
) -> Fetched:
    """GET ``url`` under ``policy``; with ``etag``/``last_modified`` the request is conditional and
    a 304 comes back as ``Fetched(status=304, body=None)``. Raise ``FetchRefused`` on any refusal."""
    host, port, target = _parse_url(url)
    headers = {
        # The pool is opened on an IP address: name the real host ourselves.
        "Host": _host_header(host, port),
        "User-Agent": _USER_AGENT,
        "Accept": _ACCEPT,
        # We count the bytes we receive; a compressed body would defeat the limit.
        "Accept-Encoding": "identity",
    }
    for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified)):
        if value is not None:
            if _has_control_characters(value) or not value.strip():
                raise _fail(f"the stored {name} validator is not a valid header value")
            headers[name] = value

    addresses = _resolve(host, port, resolver or _system_resolver)
    if not policy.allow_private:
        for address in addresses:
            reason = _non_public_reason(address)
            if reason is not None:
                raise _fail(f"{host} resolves to {_display(address)} ({reason}); metadata is only fetched "
                            "from public addresses")
    else:
        for address in addresses:
            if address.is_multicast or address.is_unspecified:
                raise _fail(f"{host} resolves to {_display(address)}, which is not a unicast address")

    deadline = _Deadline(policy.connect_timeout + policy.read_timeout)
    try:
        failures: list[str] = []
        for address in addresses:
            if deadline.remaining() <= 0:
                break
            try:
                return _fetch_from(_connect_address(address), host, port, target, headers, url,
                                   policy, deadline, etag, last_modified)
            except _Unreachable as exc:
                # Only a failed TCP connect moves on to the next address (e.g. IPv6 without a
                # route); anything after the connection is up is the server's answer.
                failures.append(f"{_display(address)}: {exc}")
        detail = "; ".join(failures) or "no time left"
        raise _fail(f"could not connect to {host} port {port} ({detail})")
    finally:
        deadline.close()


def check_url(url: str) -> None:
    """Raise ``FetchRefused`` unless ``url`` is one ``fetch_metadata`` would try (https, a host, no
    user info). Syntax only: the addresses are checked at every fetch, since DNS answers change."""
    _parse_url(url)


# --- URL and addresses ---------------------------------------------------------------------------

def _fail(problem: str) -> FetchRefused:
    return FetchRefused(f"metadata_url: {problem}")


def _has_control_characters(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _parse_url(url: str) -> tuple[str, int, str]:
    """Return (ASCII host, port, request target)."""
    if _has_control_characters(url) or " " in url:
        raise _fail("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _fail(f"the URL is not valid ({exc})") from None
    # Checked before anything echoes the URL back, so a password never reaches an error message.
    if "@" in parts.netloc:
        raise _fail("the URL may not carry a user name or password")
    if parts.scheme != "https":
        raise _fail(f"only https:// URLs are accepted, not {url!r}")
    host = parts.hostname
    if not host:
        raise _fail(f"{url!r} has no host")
    if port == 0:
        raise _fail(f"{url!r} names port 0")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _fail(f"the host {host!r} is not a valid host name ({exc})") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ascii_host, 443 if port is None else port, target


def _host_header(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == 443 else f"{name}:{port}"


def _system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise _fail(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            raise _fail(f"{host} resolved to {answer!r}, which is not an IP address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _fail(f"{host} did not resolve to any address")
    return addresses


def _non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        # Forms that carry an IPv4 address are judged by where they really lead.
        if address.ipv4_mapped is not None:
            inner = _non_public_reason(address.ipv4_mapped)
            return f"IPv4-mapped {inner}" if inner else None
        if address.teredo is not None:
            return "Teredo tunnel"
        if address.sixtofour is not None:
            inner = _non_public_reason(address.sixtofour)
            if inner:
                return f"6to4 form of {inner}"
        if address in _NAT64:
            inner = _non_public_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return f"NAT64 form of {inner}" if inner else None
        if address in _NAT64_LOCAL:
            return "local-use NAT64"
        if address.is_site_local:
            return "site-local"
    # Most specific first: 127.0.0.1 is also "private", but "loopback" says more.
    for flag, name in (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(address, flag):
            return name
    if not address.is_global:
        return "not globally routable"
    return None


def _display(address: IPAddress) -> str:
    # Python 3.11 prints IPv4-mapped addresses in hex (::ffff:7f00:1); show the familiar form.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _connect_address(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


# --- the overall deadline ------------------------------------------------------------------------

class _Deadline:
    """One wall-clock limit over connect, TLS, headers and body.

    A timer shuts down every socket this fetch opened once the time is up: a blocked read then
    returns at once, however the server paces its bytes. It shuts down a duplicate descriptor of
    each socket (shutdown acts on the connection, not on one descriptor), so it never touches a
    descriptor the HTTP stack may already have closed and the system reused.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self._at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        duplicate = sock.dup()
        with self._lock:
            if self._closed:
                duplicate.close()
                return
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already disconnected
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def _new_conn(self) -> socket.socket:
        # The TCP socket, before the TLS handshake: the deadline covers the handshake too.
        sock = super()._new_conn()
        self._deadline.watch(sock)
        return sock


class _WatchedPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# --- the exchange --------------------------------------------------------------------------------

class _Unreachable(Exception):
    """The TCP connection to one address could not be established."""


def _fetch_from(ip: str, host: str, port: int, target: str, headers: dict[str, str], url: str,
                policy: FetchPolicy, deadline: _Deadline, etag: str | None,
                last_modified: str | None) -> Fetched:
    pool = _WatchedPool(
        ip, port,
        server_hostname=host,
        assert_hostname=host,
        cert_reqs="CERT_REQUIRED",
        ca_certs=policy.ca_bundle or certifi.where(),
        timeout=urllib3.Timeout(connect=min(policy.connect_timeout, max(deadline.remaining(), 0.001)),
                                read=policy.read_timeout),
        retries=False,
        maxsize=1,
        deadline=deadline,
    )
    try:
        try:
            response = pool.urlopen("GET", target, headers=headers, redirect=False, retries=False,
                                    preload_content=False, decode_content=False,
                                    assert_same_host=False)
        except ConnectTimeoutError as exc:  # also NewConnectionError: no TCP connection at all
            raise _Unreachable(_reason(exc)) from None
        except HTTPError as exc:
            raise _transport_failure(exc, host, deadline) from None
        try:
            return _read_response(response, host, url, policy, deadline, etag, last_modified)
        finally:
            response.close()
    finally:
        pool.close()


def _read_response(response: BaseHTTPResponse, host: str, url: str, policy: FetchPolicy,
                   deadline: _Deadline, etag: str | None, last_modified: str | None) -> Fetched:
    status = response.status
    if status == 304:
        # A 304 may omit the validators; the ones we sent still describe the body we have.
        return Fetched(304, None, response.headers.get("ETag") or etag,
                       response.headers.get("Last-Modified") or last_modified, url)
    if 300 <= status < 400:
        location = response.headers.get("Location")
        raise _fail(f"{host} answered HTTP {status} redirecting to {location!r}; redirects are not "
                    "followed, configure the final URL instead")
    if status != 200:
        raise _fail(f"{host} answered HTTP {status} {response.reason or ''}".rstrip())
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise _fail(f"{host} sent a {encoding!r}-encoded body although identity was requested")
    declared = response.headers.get("Content-Length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise _fail(f"{host} sent an invalid Content-Length {declared!r}") from None
        if length > policy.max_bytes:
            raise _fail(f"{host} announces {length} bytes (Content-Length), more than the "
                        f"{policy.max_bytes} allowed")

    body = bytearray()
    while True:
        try:
            chunk = response.read1(_CHUNK)
        except HTTPError as exc:
            raise _transport_failure(exc, host, deadline) from None
        if not chunk:
            break
        body += chunk
        if len(body) > policy.max_bytes:
            raise _fail(f"the response from {host} is larger than the {policy.max_bytes} bytes "
                        "allowed")
        if deadline.expired or deadline.remaining() <= 0:
            raise _too_slow(host, deadline)
    # The deadline may have cut a close-delimited body short, which reads like a normal end.
    if deadline.expired:
        raise _too_slow(host, deadline)
    return Fetched(200, bytes(body), response.headers.get("ETag"),
                   response.headers.get("Last-Modified"), url)


def _too_slow(host: str, deadline: _Deadline) -> FetchRefused:
    return _fail(f"{host} did not deliver the metadata within {deadline.seconds:g} seconds")


def _transport_failure(exc: HTTPError, host: str, deadline: _Deadline) -> FetchRefused:
    if deadline.expired:
        return _too_slow(host, deadline)
    if isinstance(exc, SSLError):
        return _fail(f"TLS with {host} failed (is the certificate valid for {host}?): {_reason(exc)}")
    if isinstance(exc, ReadTimeoutError):
        return _fail(f"{host} stopped sending for longer than the read timeout")
    return _fail(f"the exchange with {host} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    # urllib3 wraps the useful exception; its text names the actual problem.
    inner = exc.__cause__ or exc.__context__
    text = str(inner or exc) or type(exc).__name__
    return text[:300]


__all__ = ["FetchPolicy", "Fetched", "check_url", "fetch_metadata"]
