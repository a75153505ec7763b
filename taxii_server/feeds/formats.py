"""The lists as devices read them: one value a line, Check Point CSV, a DNS RPZ zone.

Every list starts with comments saying what it is and as of when; the body depends
only on the entries and that moment, so equal entries give equal bytes (and the
`.md5` companion stays valid until the list changes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..storage.base import FeedEntry
from ..timestamps import format_timestamp

# List name -> the kinds of entry it holds.
LISTS = {
    "ipv4.txt": ("ipv4",), "ipv6.txt": ("ipv6",), "domain.txt": ("domain",), "url.txt": ("url",),
    "sha256.txt": ("sha256",), "sha1.txt": ("sha1",), "md5.txt": ("md5",),
    # Check Point's IP and IP Range types are IPv4 only.
    "iocs.csv": ("ipv4", "domain", "url", "sha256", "sha1", "md5"),
    "rpz.zone": ("domain",),
}
CHECKSUM_SUFFIX = ".md5"
CSV_COLUMNS = ("UNIQ-NAME", "VALUE", "TYPE", "CONFIDENCE", "SEVERITY", "PRODUCT", "COMMENT")
_CHECK_POINT_TYPES = {"ipv4": "IP", "domain": "Domain", "url": "URL",
                      "sha256": "SHA256", "sha1": "SHA1", "md5": "MD5"}
_HIGH_SEVERITY_TYPES = {"malicious-activity", "compromised", "attribution"}
RPZ_TTL = 300


@dataclass(frozen=True)
class Heading:
    """What the comments at the top of a list say."""

    list_name: str
    collection_title: str
    collection_id: str
    as_of: int           # microseconds: when the list last changed
    filters: str         # the request's filters, as text
    comments: bool = True


def render_values(heading: Heading, values: list[str]) -> bytes:
    """A one-value-a-line list, or the RPZ zone of the domains in `values`."""
    if heading.list_name == "rpz.zone":
        return _rpz(heading, values)
    return _text(_comments(heading, len(values), "#") + values)


def render_csv(heading: Heading, entries: list[FeedEntry]) -> bytes:
    """Check Point's CSV: `#` comments and the column header, then one row an entry."""
    out = io.StringIO()
    for line in _comments(heading, len(entries), "#") + (["# " + ",".join(CSV_COLUMNS)] if heading.comments else []):
        out.write(line + "\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(_check_point_row(entry) for entry in entries)
    return out.getvalue().encode()


def checksum(body: bytes) -> bytes:
    """The `.md5` companion: the list's MD5 in hexadecimal (Cisco Secure Firewall reads it)."""
    return (hashlib.md5(body, usedforsecurity=False).hexdigest() + "\n").encode()


def _comments(heading: Heading, count: int, mark: str) -> list[str]:
    if not heading.comments:
        return []
    return [f"{mark} {heading.list_name} from collection {heading.collection_title!r} ({heading.collection_id})",
            f"{mark} as of {format_timestamp(heading.as_of)}: {count} entries, "
            f"active indicators only (latest version, not revoked, valid now)",
            f"{mark} order: highest confidence first, then newest; filters: {heading.filters or 'none'}"]


def _text(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _check_point_row(entry: FeedEntry) -> tuple[str, ...]:
    value, kind = entry.value, _CHECK_POINT_TYPES[entry.kind]
    if entry.kind == "ipv4" and "/" in value:
        network = ipaddress.ip_network(value)
        value, kind = f"{network.network_address}-{network.broadcast_address}", "IP Range"
    unique = hashlib.sha1(f"{entry.kind}:{entry.value}".encode(), usedforsecurity=False).hexdigest()[:16]
    product = "AV" if entry.kind in ("sha256", "sha1", "md5") else "AB"
    comment = entry.name or entry.indicator_id
    return (f"taxii-{entry.kind}-{unique}", value, kind, _confidence_level(entry.confidence),
            _severity(entry.indicator_types), product, comment)


def _confidence_level(confidence: int) -> str:
    if confidence < 0:
        return "medium"  # the indicator does not say
    return "low" if confidence < 30 else "medium" if confidence < 70 else "high"


def _severity(indicator_types: str) -> str:
    types = set(filter(None, indicator_types.split(",")))
    if types & _HIGH_SEVERITY_TYPES:
        return "high"
    return "low" if types == {"benign"} else "medium"


def _rpz(heading: Heading, domains: list[str]) -> bytes:
    serial = (heading.as_of // 1_000_000) % 2 ** 32
    lines = _comments(heading, len(domains), ";") + [
        f"$TTL {RPZ_TTL}",
        f"@ IN SOA localhost. hostmaster.localhost. ({serial} 3600 600 604800 {RPZ_TTL})",
        "@ IN NS localhost.",
    ]
    # NXDOMAIN for the name and every name under it (RPZ: CNAME to the root).
    for domain in domains:
        lines += [f"{domain} CNAME .", f"*.{domain} CNAME ."]
    return _text(lines)
