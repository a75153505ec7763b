"""TAXII/STIX timestamps as integer microseconds since the Unix epoch.

The server keeps every timestamp as an integer so that ordering, equality and
keyset cursors are exact; text is produced only at the edges.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# RFC 3339 years have four digits: after applying the offset the moment must still fall within them.
_FIRST = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
_LAST = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
MICROS_PER_MILLISECOND = 1000


class TimestampError(ValueError):
    """The text is not an RFC 3339 timestamp."""


def parse_timestamp(text: str) -> int:
    """RFC 3339 text -> microseconds since the epoch (UTC).

    Any fractional precision is accepted; digits past the sixth are truncated,
    which keeps `added_after` ("strictly later than") exact.
    """
    return _parse(text)[0]


def parse_added_after(text: str) -> int:
    """An `added_after` bookmark -> the last microsecond it covers.

    A bookmark given to the millisecond or coarser (at most three fractional
    digits) means "after the end of that millisecond": clients that keep
    X-TAXII-Date-Added-Last through a millisecond clock (JavaScript's Date,
    moment) cut it there, and every write starts in a millisecond of its own
    (storage/planning.py), so nothing later can share the millisecond they cut.
    """
    micros, fraction_digits = _parse(text)
    if fraction_digits <= 3:
        micros = micros - micros % MICROS_PER_MILLISECOND + MICROS_PER_MILLISECOND - 1
    return micros


# An object's `created` and `modified` (and often `valid_from`) are one text, read by
# validation and again for its version: each distinct text of a post is parsed once.
@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[int, int]:
    """(microseconds since the epoch, how many fractional digits the text gave)."""
    match = _RFC3339.fullmatch(text or "")  # not .match: "$" also matches before a trailing newline
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
        if int(off_h) > 23 or int(off_m) > 59:
            raise TimestampError(f"{text!r} has an offset out of range (at most 23:59)")
        offset = (int(off_h) * 60 + int(off_m)) * 60_000_000
        micros -= offset if sign == "+" else -offset
    if not _FIRST <= micros <= _LAST:
        raise TimestampError(f"{text!r} is outside the years 0001 to 9999 once converted to UTC")
    return micros, len(fraction or "")


def format_timestamp(micros: int) -> str:
    """Microseconds since the epoch -> `YYYY-MM-DDTHH:MM:SS.ffffffZ` (TAXII §2)."""
    seconds, fraction = divmod(micros, 1_000_000)
    t = time.gmtime(seconds)
    # Not strftime("%Y"): it drops the leading zeros of years before 1000.
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            f".{fraction:06d}Z")


def now_micros() -> int:
    return time.time_ns() // 1000


def millisecond_of(micros: int) -> int:
    return micros // MICROS_PER_MILLISECOND


def start_of_millisecond(millisecond: int) -> int:
    return millisecond * MICROS_PER_MILLISECOND


def _whole_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000
