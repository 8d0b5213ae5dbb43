"""IPv6 addresses that stand for an IPv4 one: NAT64's prefixes, and the IPv4 address a NAT64
address carries. Both the metadata fetch (where a request really goes) and the rate limits (who
really sent one) judge such an address by its IPv4 address."""

from __future__ import annotations

import ipaddress

# RFC 6052 well-known NAT64 prefix: the embedded IPv4 address is where the packet really goes.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: translates into the operator's own network.
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def nat64_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address in the last 32 bits of a well-known-prefix NAT64 address, else None."""
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None
