"""TAXII/STIX timestamps as integer microseconds since the Unix epoch.

The server keeps every timestamp as an integer so that ordering, equality and
keyset cursors are exact; text is produced only at the edges.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TimestampError(ValueError):
    """The text is not an RFC 3339 timestamp."""


def parse_timestamp(text: str) -> int:
    """RFC 3339 text -> microseconds since the epoch (UTC).

    Any fractional precision is accepted; digits past the sixth are truncated,
    which keeps `added_after` ("strictly later than") exact.
    """
    match = _RFC3339.match(text or "")
    if not match:
        raise TimestampError(f"{text!r} is not an RFC 3339 timestamp such as 2026-01-31T12:00:00.000000Z")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    except ValueError as exc:
        raise TimestampError(f"{text!r} is not a valid date and time: {exc}") from None
    micros = _whole_micros(moment)
    if fraction:
        micros += int((fraction + "00000")[:6])
    if not zulu:
        offset = (int(off_h) * 60 + int(off_m)) * 60_000_000
        micros -= offset if sign == "+" else -offset
    return micros


def format_timestamp(micros: int) -> str:
    """Microseconds since the epoch -> `YYYY-MM-DDTHH:MM:SS.ffffffZ` (TAXII §2)."""
    seconds, fraction = divmod(micros, 1_000_000)
    moment = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{fraction:06d}Z"


def now_micros() -> int:
    return time.time_ns() // 1000


def _whole_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000
