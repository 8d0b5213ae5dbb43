"""The internal hosts an IdP's metadata URL may be on (``metadata_internal_hosts``).

AD FS publishes its federation metadata on the company's own network, which the fetcher refuses
like every private address (SSRF). An admin can name, per IdP, the host and the private addresses
it is served from; the fetcher then accepts exactly that host, on exactly those addresses and on
port 443 (or the one port the entry names: ``"adfs.corp.example:8443"``). Every other rule stands:
https, the name checked against the certificate, the connection made to the address that was
checked (so a second DNS answer cannot move it), no redirects, the size and time limits.

Only private addresses can be named: RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local
addresses (fc00::/7) except fd00:ec2::/64 and fd20:ce::/64, where clouds serve their instance
metadata (AWS, Google Cloud). Loopback,
link-local (169.254.169.254 included), shared address space (100.64/10), benchmarking, reserved,
documentation, multicast and every other special range can never be named, and each entry is
narrow (at most a /24, or a /64 in IPv6), so the setting opens one service rather than a network.
The fetcher checks the address it connects to against these ranges again (``internal_address``).
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any, NamedTuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOSTS = 8
DEFAULT_PORT = 443
_WIDEST = {4: 24, 6: 64}

# The only ranges an internal host may be on.
PRIVATE_RANGES: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv6Network("fc00::/7"),
)
# Inside those, never: the instance metadata services of clouds (the IPv6 endpoints of AWS,
# fd00:ec2::254, and of Google Cloud, fd20:ce::254).
CLOUD_METADATA: tuple[IPNetwork, ...] = (ipaddress.IPv6Network("fd00:ec2::/64"),
                                         ipaddress.IPv6Network("fd20:ce::/64"))
_CLOUD_METADATA_NAMES = "fd00:ec2::/64, fd20:ce::/64"

# Why an address outside PRIVATE_RANGES cannot be named, most specific first.
_SPECIAL: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "a 'this network' (0/8)"),
    ("127.0.0.0/8", "a loopback"),
    ("169.254.0.0/16", "a link-local"),
    ("100.64.0.0/10", "a shared address space (CGNAT, 100.64/10)"),
    ("198.18.0.0/15", "a benchmarking (198.18/15)"),
    ("192.0.0.0/24", "an IETF protocol assignment (192.0.0/24)"),
    ("192.88.99.0/24", "a 6to4 relay (192.88.99/24)"),
    ("192.0.2.0/24", "a documentation (TEST-NET)"),
    ("198.51.100.0/24", "a documentation (TEST-NET)"),
    ("203.0.113.0/24", "a documentation (TEST-NET)"),
    ("224.0.0.0/4", "a multicast"),
    ("240.0.0.0/4", "a reserved (240/4)"),
    ("::/128", "the unspecified"),
    ("::1/128", "a loopback"),
    ("fe80::/10", "a link-local"),
    ("fec0::/10", "a site-local (deprecated)"),
    ("::ffff:0:0/96", "an IPv4-mapped"),
    ("64:ff9b::/96", "a NAT64"),
    ("64:ff9b:1::/48", "a local-use NAT64"),
    ("2001::/32", "a Teredo"),
    ("2002::/16", "a 6to4"),
    ("ff00::/8", "a multicast"),
    ("2001:db8::/32", "a documentation"),
)


class InternalHost(NamedTuple):
    name: str
    port: int
    networks: tuple[IPNetwork, ...]


InternalHosts = tuple[InternalHost, ...]


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
    for key, addresses in raw.items():
        name, port = _host_and_port(key)
        if name is None or port is None:
            add_problem(f"{where}: {key!r} is not a host name (or a host name and a port, "
                        '"adfs.corp.example:8443")')
            continue
        label = name if port == DEFAULT_PORT else f"{name}:{port}"
        if not isinstance(addresses, list) or not addresses or len(addresses) > 16:
            add_problem(f"{where}.{label}: a list of 1 to 16 addresses or networks")
            continue
        networks = []
        for text in addresses:
            network, problem = _network(text)
            if problem:
                add_problem(f"{where}.{label}: {text!r}: {problem}")
            elif network is not None:
                networks.append(network)
        hosts.append(InternalHost(name, port, tuple(networks)))
    return tuple(hosts)


def normal_host(host: str) -> str:
    """``host`` as the entries are keyed: ASCII (IDNA, so the ideographic and other full stops
    are dots), lower case, without the trailing dot of a fully qualified name. A URL's host
    names the same host in each of these forms, and DNS answers for each alike."""
    name = host
    for stop in ("\u3002", "\uff0e", "\uff61"):  # the full stops IDNA maps to "."
        name = name.replace(stop, ".")
    name = name.removesuffix(".")
    with contextlib.suppress(UnicodeError):
        name = name.encode("idna").decode("ascii")
    return name.lower()


def is_listed(hosts: InternalHosts, host: str) -> bool:
    """Whether ``host`` has an entry (on any port)."""
    name = normal_host(host)
    return any(entry.name == name for entry in hosts)


def port_allowed(hosts: InternalHosts, host: str, port: int) -> bool:
    name = normal_host(host)
    return any(entry.name == name and entry.port == port for entry in hosts)


def internal_host_allows(hosts: InternalHosts, host: str, port: int, address: IPAddress) -> bool:
    """Whether the entry for ``host`` and ``port`` lists ``address``, and ``address`` is one an
    internal host may be on at all."""
    if internal_address(address) is not None:
        return False
    name = normal_host(host)
    return any(entry.name == name and entry.port == port
               and any(address.version == n.version and address in n for n in entry.networks)
               for entry in hosts)


def internal_address(address: IPAddress) -> str | None:
    """Why ``address`` can never be an internal host's, or None for an allowed private address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return "an IPv4-mapped"
    if any(address.version == n.version and address in n for n in CLOUD_METADATA):
        return f"a cloud metadata service ({_CLOUD_METADATA_NAMES})"
    if any(address.version == n.version and address in n for n in PRIVATE_RANGES):
        return None
    for network, name in _SPECIAL:
        parsed = ipaddress.ip_network(network)
        if address.version == parsed.version and address in parsed:
            return name
    if address.is_global:
        return "a public"
    return "a special-purpose"


def _host_and_port(key: Any) -> tuple[str | None, int | None]:
    if not isinstance(key, str):
        return None, None
    host, port = key, DEFAULT_PORT
    if ":" in key:
        host, _, port_text = key.rpartition(":")
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
                and 1 <= int(port_text) <= 65535):
            return None, None
        port = int(port_text)
    return _host_name(host), port


def _host_name(host: str) -> str | None:
    if not host or len(host) > 253 or host.endswith("."):
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


def _network(text: Any) -> tuple[IPNetwork | None, str]:
    if not isinstance(text, str):
        return None, "an IP address or network in CIDR notation"
    if "%" in text:
        # A zone names an interface of whichever node fetches, not an address of the service.
        return None, "an address with a zone (%...) cannot be named: write the address alone"
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None, "not an IP address or network in CIDR notation"
    first, last = network.network_address, network.broadcast_address
    if isinstance(first, ipaddress.IPv6Address) and first.ipv4_mapped is not None:
        return None, "write the IPv4 address itself"
    for end in (first, last):
        reason = internal_address(end)
        if reason == "a public":
            return None, "not a private address (public addresses need no entry)"
        if reason is not None:
            return None, (f"{reason} address can never be fetched from (only 10/8, 172.16/12, "
                          "192.168/16 and fc00::/7)")
    if any(network.version == n.version and network.overlaps(n) for n in CLOUD_METADATA):
        return None, (f"a cloud metadata service ({_CLOUD_METADATA_NAMES}) address can never be "
                      "fetched from")
    if network.prefixlen < _WIDEST[network.version]:
        return None, (f"wider than /{_WIDEST[network.version]}: name the servers' addresses, "
                      "not the network")
    return network, ""
