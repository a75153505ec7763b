"""What a feed must never publish, and the normal form of what it may.

A firewall or resolver enforces every line it is given. One entry such as
`0.0.0.0/1`, `10.0.0.0/8` or `com` would cut a licensee off from the internet
or from its own network, so such entries are held back, with the reason, for
the regulator's report:

- anything overlapping the allowlist: configured networks and domains, plus the
  shipped ones (loopback, private, shared, link-local, documentation and
  multicast ranges; the root and the special-use domains);
- IPv4 prefixes shorter than `min_ipv4_prefix` (/8 by default), IPv6 shorter than
  `min_ipv6_prefix` (/32);
- wildcard domains and bare top-level domains (a name without a dot).

Values a list cannot carry (not an address, not a hostname, a hash of the wrong
length, anything with spaces or control characters) are left out as invalid.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SHIPPED_NETWORKS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10", "2001:db8::/32", "ff00::/8",
)
# The special-use names of RFC 6761 and RFC 6762, and the reverse-lookup tree.
SHIPPED_DOMAINS = ("localhost", "local", "arpa", "invalid", "test", "example", "example.com", "example.net",
                   "example.org", "home.arpa")

HASH_LENGTHS = {"sha256": 64, "sha1": 40, "md5": 32}
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_*](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_HEX = re.compile(r"^[0-9a-f]+$")
# A URL line must stay one line and one CSV field's worth of printable text.
_URL_TEXT = re.compile(r"^[\x21-\x7e]{1,2048}$")


class InvalidValue(ValueError):
    """A value no list can carry; the message says why."""


@dataclass(frozen=True)
class SafetyRules:
    networks: tuple[Network, ...] = ()
    domains: tuple[str, ...] = ()
    min_ipv4_prefix: int = 8
    min_ipv6_prefix: int = 32
    fingerprint: str = field(default="", compare=False)

    @property
    def ranges(self) -> list[tuple[int, int, int, Network]]:
        """(version, first address, last address, network) of each allowlisted network, as integers."""
        if "_ranges" not in self.__dict__:
            object.__setattr__(self, "_ranges", [(n.version, int(n.network_address), int(n.broadcast_address), n)
                                                 for n in self.networks])
        return self.__dict__["_ranges"]

    @classmethod
    def build(cls, allow_networks=(), allow_domains=(), min_ipv4_prefix: int = 8,
              min_ipv6_prefix: int = 32) -> "SafetyRules":
        """The shipped allowlist plus the configured one. Raises ValueError on a bad entry."""
        networks = tuple(ipaddress.ip_network(text, strict=False) for text in (*SHIPPED_NETWORKS, *allow_networks))
        domains = tuple(sorted({_bare_domain(text) for text in (*SHIPPED_DOMAINS, *allow_domains)}))
        text = "|".join([*map(str, networks), *domains, str(min_ipv4_prefix), str(min_ipv6_prefix)])
        return cls(networks, domains, min_ipv4_prefix, min_ipv6_prefix,
                   fingerprint=hashlib.sha256(text.encode()).hexdigest()[:16])


@dataclass(frozen=True)
class Checked:
    value: str             # the normal form published
    held: str | None = None  # why it is held back, None when it may be published


def check(kind: str, raw: str, rules: SafetyRules) -> Checked:
    """The normal form of `raw` and whether it may be published; InvalidValue when no list can carry it."""
    if kind in ("ipv4", "ipv6"):
        return _check_network(kind, raw, rules)
    if kind == "domain":
        return _check_domain(raw, rules)
    if kind == "url":
        return _check_url(raw, rules)
    return Checked(_hash(kind, raw))


def _check_network(kind: str, raw: str, rules: SafetyRules) -> Checked:
    text = raw.strip()
    try:
        # A single address (the common case) parses several times faster than a network.
        network = ipaddress.ip_network(text, strict=False) if "/" in text else ipaddress.ip_address(text)
    except ValueError:
        raise InvalidValue(f"{raw!r} is not an {kind.upper()} address or network") from None
    if network.version != (4 if kind == "ipv4" else 6):
        raise InvalidValue(f"{raw!r} is not an {kind.upper()} address or network")
    if isinstance(network, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        value, prefix, first, last = str(network), network.max_prefixlen, int(network), int(network)
    else:
        single = network.prefixlen == network.max_prefixlen
        value = str(network.network_address) if single else network.with_prefixlen
        prefix, first, last = network.prefixlen, int(network.network_address), int(network.broadcast_address)
    shortest = rules.min_ipv4_prefix if network.version == 4 else rules.min_ipv6_prefix
    if prefix < shortest:
        return Checked(value, f"prefix /{prefix} is shorter than /{shortest}")
    for version, low, high, allowed in rules.ranges:
        if version == network.version and first <= high and low <= last:
            return Checked(value, f"overlaps the allowlisted network {allowed}")
    return Checked(value)


def _check_domain(raw: str, rules: SafetyRules) -> Checked:
    name = raw.strip().rstrip(".").lower()
    if not _HOSTNAME.match(name):
        raise InvalidValue(f"{raw!r} is not a domain name")
    if "*" in name:
        return Checked(name, "wildcard domain")
    if "." not in name:
        return Checked(name, "a bare top-level domain")
    allowed = _allowlisted_domain(name, rules)
    if allowed is not None:
        return Checked(name, f"within the allowlisted domain {allowed}")
    return Checked(name)


def _check_url(raw: str, rules: SafetyRules) -> Checked:
    url = raw.strip()
    if not _URL_TEXT.match(url):
        raise InvalidValue("the URL is empty, too long, or holds spaces or control characters")
    try:
        host = urlsplit(url if "://" in url else "//" + url).hostname or ""
    except ValueError:
        raise InvalidValue(f"{url!r} is not a URL") from None
    if not host:
        raise InvalidValue(f"{url!r} names no host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        allowed = _allowlisted_domain(host.rstrip(".").lower(), rules)
        if allowed is not None:
            return Checked(url, f"its host is within the allowlisted domain {allowed}")
        return Checked(url)
    for network in rules.networks:
        if address in network:
            return Checked(url, f"its host is in the allowlisted network {network}")
    return Checked(url)


def _hash(kind: str, raw: str) -> str:
    value = raw.strip().lower()
    if len(value) != HASH_LENGTHS[kind] or not _HEX.match(value):
        raise InvalidValue(f"{raw!r} is not a {kind.upper()} hash ({HASH_LENGTHS[kind]} hexadecimal digits)")
    return value


def _allowlisted_domain(name: str, rules: SafetyRules) -> str | None:
    for allowed in rules.domains:
        if name == allowed or name.endswith("." + allowed):
            return allowed
    return None


def _bare_domain(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not _HOSTNAME.match(name) or "*" in name:
        raise ValueError(f"{text!r} is not a domain name")
    return name
