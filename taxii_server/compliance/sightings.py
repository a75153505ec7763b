"""Sightings and false positives, per indicator.

A licensee reports that it saw an indicator with a STIX `sighting`
(`sighting_of_ref` = the indicator; `count`, `first_seen`, `last_seen`), and
that an indicator is a false positive with an `opinion` of `disagree` or
`strongly-disagree` naming it. For a sighting, the latest version counts.
"""

from __future__ import annotations

from ..config import Operator
from ..storage.base import FalsePositive, SightingRecord
from ..timestamps import TimestampError, parse_timestamp
from .reading import Exchange, ReportedObject

DISAGREEING = frozenset({"disagree", "strongly-disagree"})
INDICATOR_PREFIX = "indicator--"
MAX_COUNT = 999_999_999  # STIX's own bound on `count`


def record_sighting(exchange: Exchange, licensee: Operator, reported: ReportedObject) -> None:
    obj = reported.body
    indicator_id = obj.get("sighting_of_ref")
    if obj.get("type") != "sighting" or not _is_indicator(indicator_id):
        return
    if _publisher_own(exchange, licensee, obj, indicator_id):
        return
    count = obj.get("count", 1)
    count = min(max(count, 0), MAX_COUNT) if isinstance(count, int) and not isinstance(count, bool) else 1
    first = _time(obj.get("first_seen")) or _time(obj.get("last_seen")) or reported.received_at
    last = _time(obj.get("last_seen")) or first
    exchange.store.save_sighting(SightingRecord(
        licensee.id, obj["id"], reported.version, _time(reported.version) or reported.received_at, indicator_id,
        count, first, last, reported.received_at))


def record_false_positives(exchange: Exchange, licensee: Operator, reported: ReportedObject) -> None:
    obj = reported.body
    refs = obj.get("object_refs")
    if obj.get("type") != "opinion" or obj.get("opinion") not in DISAGREEING or not isinstance(refs, list):
        return
    for indicator_id in dict.fromkeys(ref for ref in refs[:1000] if _is_indicator(ref)):
        if not _publisher_own(exchange, licensee, obj, indicator_id):
            exchange.store.save_false_positive(
                FalsePositive(licensee.id, obj["id"], indicator_id, obj["opinion"], reported.received_at))


def _publisher_own(exchange: Exchange, licensee: Operator, obj: dict, indicator_id: str) -> bool:
    holding = exchange.holding(indicator_id, exchange.published_to(licensee))
    return bool(holding) and exchange.same_creator(obj, holding[0].id, indicator_id)


def _is_indicator(ref) -> bool:
    return isinstance(ref, str) and ref.startswith(INDICATOR_PREFIX)


def _time(text) -> int | None:
    try:
        return parse_timestamp(text) if isinstance(text, str) else None
    except TimestampError:
        return None
