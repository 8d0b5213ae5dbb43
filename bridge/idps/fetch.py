"""Fetch IdP metadata from a URL an admin typed, without turning the bridge into a proxy (SSRF).

* https only, no user info in the URL;
* the host is resolved once and every address must be public (unless the policy allows private
  ones, or names this host and these addresses as an IdP's internal host,
  bridge.idps.internal_hosts); the connection then goes to that checked address itself, so a
  second DNS answer cannot rebind the name to an internal address between the check and the connect;
* TLS is verified against the URL's host name (SNI and certificate), not against the address;
* redirects are refused, not followed (a redirect could point anywhere; the admin configures the
  final URL instead);
* the body is streamed under a byte limit, and the whole exchange under one wall-clock deadline,
  because per-operation timeouts alone let a server that drips one byte at a time hold us forever.

Every refusal is a ``FetchRefused`` whose message starts with ``metadata_url:``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import certifi
import urllib3
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError, SSLError
from urllib3.response import BaseHTTPResponse

from bridge.errors import FetchRefused
from bridge.idps.fetch_addresses import (
    Resolver,
    connect_address,
    display,
    fail,
    has_control_characters,
    host_header,
    non_public_reason,
    parse_url,
    resolve,
    system_resolver,
)
from bridge.idps.internal_hosts import InternalHosts, internal_host_allows

_CHUNK = 64 * 1024
_USER_AGENT = "saml-jwt-bridge metadata fetcher"
_ACCEPT = "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 2 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    ca_bundle: str | None = None  # None: certifi's bundle
    # One IdP's metadata_internal_hosts: these hosts on these private addresses only.
    internal_hosts: InternalHosts = ()


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
    host, port, target = parse_url(url)
    headers = {
        # The pool is opened on an IP address: name the real host ourselves.
        "Host": host_header(host, port),
        "User-Agent": _USER_AGENT,
        "Accept": _ACCEPT,
        # We count the bytes we receive; a compressed body would defeat the limit.
        "Accept-Encoding": "identity",
    }
    for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified)):
        if value is not None:
            if has_control_characters(value) or not value.strip():
                raise fail(f"the stored {name} validator is not a valid header value")
            headers[name] = value

    addresses = resolve(host, port, resolver or system_resolver)
    if not policy.allow_private:
        for address in addresses:
            reason = non_public_reason(address)
            if reason is None or (reason == "private" and internal_host_allows(
                    policy.internal_hosts, host, address)):
                continue
            listed = any(name == host for name, _ in policy.internal_hosts)
            raise fail(f"{host} resolves to {display(address)} ({reason}); metadata is only fetched "
                       "from public addresses" + (
                           f", and from {host} only on the addresses metadata_internal_hosts "
                           "lists for it" if listed else
                           " (an internal host must be listed, with its addresses, in the "
                           "metadata_internal_hosts of this IdP)"))
    else:
        for address in addresses:
            if address.is_multicast or address.is_unspecified:
                raise fail(f"{host} resolves to {display(address)}, which is not a unicast address")

    deadline = _Deadline(policy.connect_timeout + policy.read_timeout)
    try:
        failures: list[str] = []
        for address in addresses:
            if deadline.remaining() <= 0:
                break
            try:
                return _fetch_from(connect_address(address), host, port, target, headers, url,
                                   policy, deadline, etag, last_modified)
            except _Unreachable as exc:
                # Only a failed TCP connect moves on to the next address (e.g. IPv6 without a
                # route); anything after the connection is up is the server's answer.
                failures.append(f"{display(address)}: {exc}")
        detail = "; ".join(failures) or "no time left"
        raise fail(f"could not connect to {host} port {port} ({detail})")
    finally:
        deadline.close()


def check_url(url: str) -> None:
    """Raise ``FetchRefused`` unless ``url`` is one ``fetch_metadata`` would try (https, a host, no
    user info). Syntax only: the addresses are checked at every fetch, since DNS answers change."""
    parse_url(url)


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
        raise fail(f"{host} answered HTTP {status} redirecting to {location!r}; redirects are not "
                    "followed, configure the final URL instead")
    if status != 200:
        raise fail(f"{host} answered HTTP {status} {response.reason or ''}".rstrip())
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise fail(f"{host} sent a {encoding!r}-encoded body although identity was requested")
    declared = response.headers.get("Content-Length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise fail(f"{host} sent an invalid Content-Length {declared!r}") from None
        if length > policy.max_bytes:
            raise fail(f"{host} announces {length} bytes (Content-Length), more than the "
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
            raise fail(f"the response from {host} is larger than the {policy.max_bytes} bytes "
                        "allowed")
        if deadline.expired or deadline.remaining() <= 0:
            raise _too_slow(host, deadline)
    # The deadline may have cut a close-delimited body short, which reads like a normal end.
    if deadline.expired:
        raise _too_slow(host, deadline)
    return Fetched(200, bytes(body), response.headers.get("ETag"),
                   response.headers.get("Last-Modified"), url)


def _too_slow(host: str, deadline: _Deadline) -> FetchRefused:
    return fail(f"{host} did not deliver the metadata within {deadline.seconds:g} seconds")


def _transport_failure(exc: HTTPError, host: str, deadline: _Deadline) -> FetchRefused:
    if deadline.expired:
        return _too_slow(host, deadline)
    if isinstance(exc, SSLError):
        return fail(f"TLS with {host} failed (is the certificate valid for {host}?): {_reason(exc)}")
    if isinstance(exc, ReadTimeoutError):
        return fail(f"{host} stopped sending for longer than the read timeout")
    return fail(f"the exchange with {host} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    # urllib3 wraps the useful exception; its text names the actual problem.
    inner = exc.__cause__ or exc.__context__
    text = str(inner or exc) or type(exc).__name__
    return text[:300]


__all__ = ["FetchPolicy", "Fetched", "check_url", "fetch_metadata"]
