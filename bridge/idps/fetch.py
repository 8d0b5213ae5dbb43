"""Fetch IdP metadata from a URL an admin typed, without turning the bridge into a proxy (SSRF).

* https only, no user info in the URL;
* the host is resolved once and every address must be public (unless the policy allows private
  ones, or names this host, port and these private addresses as an IdP's internal host,
  bridge.idps.internal_hosts); the connection then goes to that checked address itself, so a
  second DNS answer cannot rebind the name to an internal address between the check and the connect;
* a failure with an internal host tells the admin only that it failed (``metadata_internal_*``
  codes): its addresses, status line, body, certificate and whether a port answered stay in the
  log, so the setting cannot be used to map the internal network;
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
import logging
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

from bridge.errors import BridgeError, FetchRefused
from bridge.idps.fetch_addresses import (
    IPAddress,
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
from bridge.idps.internal_hosts import (
    DEFAULT_PORT,
    InternalHosts,
    internal_address,
    internal_host_allows,
    is_listed,
    normal_host,
    port_allowed,
)
from bridge.ip_forms import nat64_ipv4
from bridge.saml import ns
from bridge.saml.xml_parser import parse_untrusted

log = logging.getLogger("bridge.idps.fetch")

# The stable codes of an internal host's refusals (docs/errors.md); every other refusal is
# config_invalid.
INTERNAL_HOST_REFUSED = "metadata_internal_host_refused"
INTERNAL_FETCH_FAILED = "metadata_internal_fetch_failed"
_METADATA_ROOTS = (f"{{{ns.MD}}}EntityDescriptor", f"{{{ns.MD}}}EntitiesDescriptor")

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
    # The nat64_prefixes setting: addresses under them are judged by the IPv4 address they carry.
    nat64_prefixes: tuple[ipaddress.IPv6Network, ...] = ()


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

    internal = not policy.allow_private and is_listed(policy.internal_hosts, host)
    if internal:
        host = normal_host(host)  # as its entry names it: the certificate is checked for that
        headers["Host"] = host_header(host, port)
        if not port_allowed(policy.internal_hosts, host, port):
            raise fail(f"{host} is an internal host: metadata is fetched from it on port "
                       f"{DEFAULT_PORT} only, or on the port its metadata_internal_hosts entry "
                       f'names ("{host}:{port}")', code=INTERNAL_HOST_REFUSED)
    # An internal host's time budget starts before its DNS question: every failure from here on
    # is answered when it is spent (_internal_failure).
    deadline = _Deadline(policy.connect_timeout + policy.read_timeout) if internal else None
    try:
        try:
            addresses = resolve(host, port, resolver or system_resolver)
        except FetchRefused as refused:
            if deadline is None:
                if policy.allow_private:
                    raise
                # Not listed: a name that does not resolve is answered as one that resolves to
                # a private address, or the answer tells which names the internal DNS knows.
                log.warning("%s: refused as having no public address", refused.public_detail)
                raise _no_public_address(host, {"host": host, "resolve": refused.public_detail}) from None
            # A listed name that does not resolve fails like any other internal failure: whether
            # an internal name exists is the internal network's business too.
            raise _internal_failure(host, refused, deadline) from None
        _check_addresses(host, port, addresses, policy, internal)
        if deadline is None:
            deadline = _Deadline(policy.connect_timeout + policy.read_timeout)
        return _fetch(addresses, host, port, target, headers, url, policy, deadline, etag,
                      last_modified, internal)
    finally:
        if deadline is not None:
            deadline.close()


def _check_addresses(host: str, port: int, addresses: list[IPAddress], policy: FetchPolicy,
                     internal: bool) -> None:
    if policy.allow_private:
        for address in addresses:
            if address.is_multicast or address.is_unspecified:
                refused = fail(f"{host} resolves to an address that is not a unicast address")
                refused.log_detail = {"host": host, "address": display(address)}
                log.warning("metadata_url: %s resolves to %s, not unicast: refused", host,
                            display(address))
                raise refused
        return
    for address in addresses:
        # A listed host is fetched from its listed addresses only, never from another one,
        # public or not. Never from one under a NAT64 prefix of the operator's: it leads to
        # whatever IPv4 address it carries, which an entry's private IPv6 range says nothing of.
        translated = isinstance(address, ipaddress.IPv6Address) and nat64_ipv4(
            address, policy.nat64_prefixes) is not None
        if not translated and internal_host_allows(policy.internal_hosts, host, port, address):
            continue
        reason = non_public_reason(address, policy.nat64_prefixes)
        if reason is None and not internal:
            continue
        if internal:
            # Which address the internal name has is the internal network's business: the
            # log has it, the admin is told which list to check.
            refused = fail(f"{host} resolves to an address that its metadata_internal_hosts "
                           "entry does not list, or that an internal host can never be on "
                           "(private addresses only); nothing was fetched",
                           code=INTERNAL_HOST_REFUSED)
            refused.log_detail = {"internal_host": host, "address": display(address),
                                  "reason": internal_address(address) or "not listed"}
            log.warning("metadata_url: internal host %s resolves to %s (%s): refused", host,
                        display(address), refused.log_detail["reason"])
            raise refused
        # Which private or internal address a name has is not the admin's to learn either,
        # listed or not, nor whether it has one: the log has it, with the request's error id.
        log.warning("metadata_url: %s resolves to %s (%s): refused", host, display(address),
                    reason)
        raise _no_public_address(host, {"host": host, "address": display(address),
                                        "reason": reason})


def _no_public_address(host: str, detail: dict[str, str | None]) -> FetchRefused:
    """One answer for a host not listed as internal that does not resolve, or resolves to a
    private or internal address: telling them apart would say which names the internal DNS
    knows. A typo of a public name reads as it too; the log has the detail."""
    refused = fail(f"{host} has no public address (it does not resolve, or resolves to a "
                   "private or internal one); metadata is only fetched from public addresses "
                   "(an internal host must be listed, with its addresses, in the "
                   "metadata_internal_hosts of this IdP)")
    refused.log_detail = detail
    return refused


def _fetch(addresses: list[IPAddress], host: str, port: int, target: str,
           headers: dict[str, str], url: str, policy: FetchPolicy, deadline: _Deadline,
           etag: str | None, last_modified: str | None, internal: bool) -> Fetched:
    try:
        failures: list[str] = []
        for address in addresses:
            if deadline.remaining() <= 0:
                break
            try:
                fetched = _fetch_from(connect_address(address), host, port, target, headers, url,
                                      policy, deadline, etag, last_modified)
                if internal and fetched.body is not None:
                    _check_is_metadata(fetched.body, host)
                return fetched
            except _Unreachable as exc:
                # Only a failed TCP connect moves on to the next address (e.g. IPv6 without a
                # route); anything after the connection is up is the server's answer.
                failures.append(f"{display(address)}: {exc}")
        detail = "; ".join(failures) or "no time left"
        raise fail(f"could not connect to {host} port {port} ({detail})")
    except FetchRefused as refused:
        if not internal:
            raise
        raise _internal_failure(host, refused, deadline) from None


def internal_host(url: str, policy: FetchPolicy) -> str | None:
    """The listed internal host ``url`` is fetched from under ``policy`` (its entry's name), or
    None when the fetch is not one from an internal host."""
    if policy.allow_private or not policy.internal_hosts:
        return None
    try:
        host = parse_url(url)[0]
    except FetchRefused:
        return None
    return normal_host(host) if is_listed(policy.internal_hosts, host) else None


def _internal_failure(host: str, refused: FetchRefused, deadline: _Deadline) -> FetchRefused:
    """What the admin is told when an internal host's fetch fails: that it failed, never how. The
    internal server's banner, status line, body or certificate, and whether a port answered at all,
    would map the internal network for whoever can edit an IdP; the log keeps all of it.

    Nor when: a closed port fails at once, a port where something listens and says nothing
    after the timeouts, a name that does not resolve after the DNS answer. Every failure is
    answered when the fetch's whole time budget (connect and read timeouts) has passed, as the
    slowest failure would be (docs/decisions/0028)."""
    log.warning("metadata_url: fetching from internal host %s failed: %s", host,
                "; ".join(refused.problems))
    deadline.wait_out()
    generic = fail(f"the metadata could not be fetched from the internal host {host}; the reason "
                   "is in the bridge's log (check the address, certificate and URL with the "
                   "network team)", code=INTERNAL_FETCH_FAILED)
    generic.log_detail = {"internal_host": host, "problems": refused.problems}
    return generic


def _check_is_metadata(body: bytes, host: str) -> None:
    """An internal server's answer goes on only if it is SAML metadata: the metadata checks name
    what they find (an HTML page, the root element, a parser message), and for any other document
    that would show the admin a piece of an internal page."""
    try:
        root = parse_untrusted(body, max_bytes=len(body) + 1, allow_comments=True, kind="metadata")
    except BridgeError as exc:
        raise fail(f"{host} did not send XML ({exc.public_detail} "
                   f"{exc.log_detail.get('parser', '')}); it starts with {body[:200]!r}") from None
    if root.tag not in _METADATA_ROOTS:
        raise fail(f"{host} sent XML whose root element is {root.tag!r}, not SAML metadata; it "
                   f"starts with {body[:200]!r}")


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

    def wait_out(self) -> None:
        """Return when the time is up (at once if it is)."""
        while (left := self.remaining()) > 0:
            time.sleep(left)

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
