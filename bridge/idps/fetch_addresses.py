"""Which URLs and addresses the metadata fetcher (``bridge.idps.fetch``) may reach: https URLs
without user info, and hosts whose every address is public (SSRF), judging the IPv6 forms that
carry an IPv4 address by where they really lead.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from bridge.errors import FetchRefused
from bridge.ip_forms import NAT64_LOCAL, nat64_ipv4

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address



def fail(problem: str, *, code: str | None = None) -> FetchRefused:
    return FetchRefused(f"metadata_url: {problem}", code=code)


def has_control_characters(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def parse_url(url: str) -> tuple[str, int, str]:
    """Return (ASCII host, port, request target)."""
    if has_control_characters(url) or " " in url:
        raise fail("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise fail(f"the URL is not valid ({exc})") from None
    # Checked before anything echoes the URL back, so a password never reaches an error message.
    if "@" in parts.netloc:
        raise fail("the URL may not carry a user name or password")
    if parts.scheme != "https":
        raise fail(f"only https:// URLs are accepted, not {url!r}")
    host = parts.hostname
    if not host:
        raise fail(f"{url!r} has no host")
    if port == 0:
        raise fail(f"{url!r} names port 0")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise fail(f"the host {host!r} is not a valid host name ({exc})") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ascii_host, 443 if port is None else port, target


def host_header(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == 443 else f"{name}:{port}"


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise fail(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError:
            raise fail(f"{host} resolved to {answer!r}, which is not an IP address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise fail(f"{host} did not resolve to any address")
    return addresses


def non_public_reason(address: IPAddress, nat64: tuple[ipaddress.IPv6Network, ...] = ()
                      ) -> str | None:
    """Why ``address`` must not be fetched from, or None for a public unicast address.
    ``nat64``: the operator's network-specific NAT64 prefixes (the ``nat64_prefixes``
    setting), whose addresses lead where the IPv4 address they carry does."""
    if isinstance(address, ipaddress.IPv6Address):
        # Forms that carry an IPv4 address are judged by where they really lead.
        if address.ipv4_mapped is not None:
            inner = non_public_reason(address.ipv4_mapped)
            return f"IPv4-mapped {inner}" if inner else None
        if address.teredo is not None:
            return "Teredo tunnel"
        if address.sixtofour is not None:
            # By its IPv4 address alone: Python 3.13 counts all of 2002::/16 as private, 3.11
            # and 3.12 none of it, and the answer must not depend on the Python that runs us.
            inner = non_public_reason(address.sixtofour)
            return f"6to4 form of {inner}" if inner else None
        translated = nat64_ipv4(address, nat64)
        if translated is not None:
            inner = non_public_reason(translated)
            return f"NAT64 form of {inner}" if inner else None
        if address in NAT64_LOCAL:
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


def display(address: IPAddress) -> str:
    # Python 3.11 prints IPv4-mapped addresses in hex (::ffff:7f00:1); show the familiar form.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def connect_address(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
