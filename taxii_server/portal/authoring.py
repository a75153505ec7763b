"""STIX 2.1 objects written from the portal's forms: indicators from plain
values, an advisory (a report over its indicators), an acknowledgement
(an `opinion` agreeing with an advisory). They are stored through the same
validation and write as a TAXII POST (api.objects.store_objects)."""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass

from ..timestamps import format_timestamp, now_micros
from .stix_view import TLP2

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.[A-Za-z]{2,63}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s]+$")


def _ip(version: int):
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_network(value, strict=False).version == version
        except ValueError:
            return False
    return check


def _hex(length: int):
    pattern = re.compile(rf"^[0-9A-Fa-f]{{{length}}}$")
    return lambda value: bool(pattern.match(value))


@dataclass(frozen=True)
class Kind:
    label: str
    object_path: str  # the STIX pattern's object path
    accepts: object   # value -> bool


KINDS = {
    "ipv4": Kind("IPv4 address or network", "ipv4-addr:value", _ip(4)),
    "ipv6": Kind("IPv6 address or network", "ipv6-addr:value", _ip(6)),
    "domain": Kind("Domain name", "domain-name:value", lambda value: bool(_DOMAIN.match(value))),
    "url": Kind("URL", "url:value", lambda value: bool(_URL.match(value))),
    "sha256": Kind("SHA-256 file hash", "file:hashes.'SHA-256'", _hex(64)),
    "md5": Kind("MD5 file hash", "file:hashes.MD5", _hex(32)),
}
MAX_VALUES = 1000


def parse_values(text: str, kind: str) -> tuple[list[str], list[str]]:
    """The values, one a line (blank lines skipped, duplicates once), and a message per line that is not one."""
    values, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        if not KINDS[kind].accepts(value):
            problems.append(f"line {number}: {value[:80]!r} is not a valid {KINDS[kind].label}")
        elif value not in values:
            values.append(value)
    if len(values) > MAX_VALUES:
        problems.append(f"at most {MAX_VALUES} values at once; split the list")
    return values, problems


def pattern_for(kind: str, value: str) -> str:
    quoted = value.lower() if kind in ("sha256", "md5") else value
    quoted = quoted.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{KINDS[kind].object_path} = '{quoted}']"


@dataclass(frozen=True)
class Details:
    """What every authored object shares."""

    name: str
    description: str
    tlp: str
    valid_from: int
    valid_until: int | None = None
    created_by_ref: str | None = None


def _common(type_: str, details: Details, now: int) -> dict:
    stamp = format_timestamp(now)[:23] + "Z"  # milliseconds, as most STIX producers write
    obj = {"type": type_, "spec_version": "2.1", "id": f"{type_}--{uuid.uuid4()}", "created": stamp,
           "modified": stamp}
    if details.created_by_ref:
        obj["created_by_ref"] = details.created_by_ref
    if details.tlp in TLP2:
        obj["object_marking_refs"] = [TLP2[details.tlp]]
    return obj


def indicators(kind: str, values: list[str], details: Details) -> list[dict]:
    now = now_micros()
    made = []
    for value in values:
        obj = _common("indicator", details, now)
        obj.update(name=f"{details.name}: {value}" if details.name else value,
                   indicator_types=["malicious-activity"], pattern=pattern_for(kind, value), pattern_type="stix",
                   valid_from=format_timestamp(details.valid_from))
        if details.valid_until is not None:
            obj["valid_until"] = format_timestamp(details.valid_until)
        if details.description:
            obj["description"] = details.description
        made.append(obj)
    return made


def advisory(details: Details, indicator_objects: list[dict]) -> dict:
    """A report (report_types threat-report) over the advisory's indicators."""
    obj = _common("report", details, now_micros())
    obj.update(name=details.name, report_types=["threat-report"], published=obj["created"],
               object_refs=[item["id"] for item in indicator_objects])
    if details.description:
        obj["description"] = details.description
    return obj


def acknowledgement(advisory_id: str, operator_name: str, created_by_ref: str | None = None) -> dict:
    """The STIX opinion the compliance records read as an acknowledgement."""
    details = Details(name="", description="", tlp="", valid_from=0, created_by_ref=created_by_ref)
    obj = _common("opinion", details, now_micros())
    obj.update(opinion="agree", object_refs=[advisory_id], explanation=f"Acknowledged by {operator_name}.")
    return obj
