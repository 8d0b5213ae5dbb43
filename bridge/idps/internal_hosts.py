"""The internal hosts an IdP's metadata URL may be on (``metadata_internal_hosts``).

AD FS publishes its federation metadata on the company's own network, which the fetcher refuses
like every private address (SSRF). An admin can name, per IdP, the host and the private addresses
it is served from; the fetcher then accepts exactly that host on exactly those addresses. Every
other rule stands: https, the name checked against the certificate, the connection made to the
address that was checked (so a second DNS answer cannot move it), no redirects, the size and time
limits. Loopback, link-local (cloud metadata services), multicast and unspecified addresses can
never be named, and each entry is narrow (at most a /24, or a /64 in IPv6), so the setting opens
one service rather than a network.
"""

from __future__ import annotations

import ipaddress
from typing import Any

InternalHosts = tuple[tuple[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...]

MAX_HOSTS = 8
_WIDEST = {4: 24, 6: 64}


def parse_internal_hosts(raw: Any, add_problem: Any) -> InternalHosts:
    """``{"adfs.corp.example": ["10.20.0.15", "10.20.1.0/28"]}`` as the fetch policy reads it;
    each problem is given to ``add_problem`` with its location."""
    where = "metadata_internal_hosts"
    if raw is None:
        return ()
    if not isinstance(raw, dict) or len(raw) > MAX_HOSTS:
        add_problem(f"{where}: a table of at most {MAX_HOSTS} host names, each with the list of "
                    'its private addresses ({ "adfs.corp.example" = ["10.20.0.15"] })')
        return ()
    hosts = []
    for host, addresses in raw.items():
        name = _host_name(host)
        if name is None:
            add_problem(f"{where}: {host!r} is not a host name")
            continue
        if not isinstance(addresses, list) or not addresses or len(addresses) > 16:
            add_problem(f"{where}.{name}: a list of 1 to 16 addresses or networks")
            continue
        networks = []
        for text in addresses:
            network, problem = _network(text)
            if problem:
                add_problem(f"{where}.{name}: {text!r}: {problem}")
            elif network is not None:
                networks.append(network)
        hosts.append((name, tuple(networks)))
    return tuple(hosts)


def internal_host_allows(hosts: InternalHosts, host: str,
                         address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``host`` is listed and ``address`` (a private one) is among its addresses."""
    for name, networks in hosts:
        if name == host.lower():
            return any(address.version == n.version and address in n for n in networks)
    return False


def _host_name(host: Any) -> str | None:
    if not isinstance(host, str) or not host or len(host) > 253 or host.endswith("."):
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    with_digits_only = all(part.isdigit() for part in ascii_host.split("."))
    labels_ok = all(label and len(label) <= 63 and label[0] != "-" and label[-1] != "-"
                    and all(c.isalnum() or c == "-" for c in label)
                    for label in ascii_host.split("."))
    return ascii_host if labels_ok and not with_digits_only else None


def _network(text: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, str]:
    if not isinstance(text, str):
        return None, "an IP address or network in CIDR notation"
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None, "not an IP address or network in CIDR notation"
    first = network.network_address
    for flag, name in (("is_loopback", "a loopback"), ("is_link_local", "a link-local"),
                       ("is_multicast", "a multicast"), ("is_unspecified", "the unspecified")):
        if getattr(first, flag) or getattr(network.broadcast_address, flag):
            return None, f"{name} address can never be fetched from"
    if isinstance(first, ipaddress.IPv6Address) and first.ipv4_mapped is not None:
        return None, "write the IPv4 address itself"
    if not (network.is_private and first.is_private and network.broadcast_address.is_private):
        return None, "not a private address (public addresses need no entry)"
    if network.prefixlen < _WIDEST[network.version]:
        return None, (f"wider than /{_WIDEST[network.version]}: name the servers' addresses, "
                      "not the network")
    return network, ""
