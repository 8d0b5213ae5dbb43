"""IPv6 addresses that stand for an IPv4 one: NAT64's prefixes, and the IPv4 address a NAT64
address carries. Both the metadata fetch (where a request really goes) and the rate limits (who
really sent one) judge such an address by its IPv4 address."""

from __future__ import annotations

import functools
import ipaddress

# RFC 6052 well-known NAT64 prefix: the embedded IPv4 address is where the packet really goes.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: translates into the operator's own network.
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def nat64_ipv4(address: ipaddress.IPv6Address, prefixes: tuple[ipaddress.IPv6Network, ...] = ()
               ) -> ipaddress.IPv4Address | None:
    """The IPv4 address in the last 32 bits of a NAT64 address: one under the well-known prefix
    or under one of ``prefixes``, the /96 network-specific prefixes the operator's networks use
    (the ``nat64_prefixes`` setting). None for any other address."""
    if address in NAT64 or any(address in prefix for prefix in prefixes):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# Where a translator's prefix can lie. Not in the ranges whose addresses already mean something
# else here (6to4 and Teredo carry an IPv4 address of their own; link-local, multicast,
# site-local, ::/8, the special-purpose blocks and the clouds' metadata ranges are never a
# metadata host's address): listed there, a prefix would turn a refusal into "public".
_TRANSLATOR_RANGES = tuple(ipaddress.IPv6Network(n)
                           for n in ("2000::/3", "fc00::/7", "64:ff9b::/32"))
_OTHER_MEANINGS = tuple(ipaddress.IPv6Network(n) for n in (
    "2002::/16", "2001::/23",  # 6to4; IETF special purpose, Teredo's 2001::/32 among them
    "fd00:ec2::/64", "fd20:ce::/64"))  # the instance metadata of AWS and Google Cloud


def _translator_range(network: ipaddress.IPv6Network) -> bool:
    return (any(network.subnet_of(r) for r in _TRANSLATOR_RANGES)
            and not any(network.subnet_of(r) for r in _OTHER_MEANINGS))


@functools.lru_cache(maxsize=16)
def nat64_networks(prefixes: tuple[str, ...]) -> tuple[ipaddress.IPv6Network, ...]:
    """The ``nat64_prefixes`` setting's prefixes as networks (checked as /96 when read)."""
    return tuple(ipaddress.IPv6Network(prefix) for prefix in prefixes)


def parse_nat64_prefixes(raw: object) -> tuple[tuple[str, ...], list[str]]:
    """``raw`` (a list of prefixes) as the setting holds it, and what is wrong with it."""
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        return (), ['a list of IPv6 /96 prefixes such as ["2001:db8:64::/96"]']
    prefixes: list[str] = []
    problems: list[str] = []
    for text in raw:
        try:
            network = ipaddress.IPv6Network(text)  # strict: no bits set past the prefix
        except ValueError:
            problems.append(f"{text[:80]!r} is not an IPv6 prefix such as \"2001:db8:64::/96\"")
            continue
        if network.prefixlen != 96:
            problems.append(f"{text[:80]!r}: only /96 prefixes, whose addresses end with the "
                            "IPv4 address (RFC 6052)")
        elif "%" in text or not _translator_range(network):
            problems.append(f"{text[:80]!r}: a NAT64 prefix is global unicast (2000::/3, but "
                            "not 6to4's 2002::/16 or the special-purpose 2001::/23), unique "
                            "local (fc00::/7, but not a cloud's metadata range) or under "
                            "64:ff9b::/32, with no zone")
        else:
            prefixes.append(str(network))
    return tuple(dict.fromkeys(prefixes)), problems
