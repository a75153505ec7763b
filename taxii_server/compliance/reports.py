"""The reports, as plain rows (dicts) for the command line, HTTP and any page.

Each report first brings the records up to date (`ComplianceService.catch_up`).
Times are RFC 3339 text, or None where there is none.
"""

from __future__ import annotations

import re
from collections import defaultdict

from ..config import Collection
from ..timestamps import TimestampError, format_timestamp, now_micros, parse_timestamp
from . import scope
from .service import ComplianceService

DeliveryCursor = tuple[str, str, int]  # operator, collection, date_added
CountCursor = tuple[str, int]  # collection, date_added


def delivery_rows(service: ComplianceService, collections: tuple[Collection, ...] | None = None,
                  since: int | None = None, after: DeliveryCursor | None = None,
                  limit: int = 1000) -> tuple[list[dict], DeliveryCursor | None]:
    """One row per licensee and object version delivered to it (by licensee, then in the order the
    versions were added), and the cursor of the next page (None at the end)."""
    page, more = _page(service, after, limit, lambda wanted: service.store.deliveries(
        _ids(service, collections), _licensee_ids(service), since, after, wanted))
    names = _collection_names(service)
    return [{"object_id": d.object_id, "version": d.version, "collection": names.get(d.collection_id, d.collection_id),
             "operator": d.operator_id, "delivered_at": _when(d.delivered_at),
             "acknowledged_at": _when(d.acknowledged_at)} for d in page], \
        (page[-1].operator_id, page[-1].collection_id, page[-1].date_added) if more else None


def delivery_summary(service: ComplianceService, collections: tuple[Collection, ...] | None = None,
                     since: int | None = None, after: CountCursor | None = None,
                     limit: int = 1000) -> tuple[list[dict], CountCursor | None]:
    """Per object version, in the order they were added: how many licensees received it and
    how many acknowledged it."""
    page, more = _page(service, after, limit, lambda wanted: service.store.delivery_counts(
        _ids(service, collections), _licensee_ids(service), since, after, wanted))
    names = _collection_names(service)
    return [{"object_id": c.object_id, "version": c.version, "collection": names.get(c.collection_id, c.collection_id),
             "licensees_delivered": c.delivered, "licensees_acknowledged": c.acknowledged,
             "first_delivered": _when(c.first_delivered)} for c in page], \
        (page[-1].collection_id, page[-1].date_added) if more else None


def _page(service: ComplianceService, after, limit: int, fetch) -> tuple[list, bool]:
    """Up to `limit` records from `fetch(how many)`, and whether more follow. Only a first page
    brings the records up to date: later ones continue from what it saw."""
    if after is None:
        service.catch_up()
    found = fetch(limit + 1)
    return found[:limit], len(found) > limit


def licensee_rows(service: ComplianceService) -> list[dict]:
    """Per licensee: last request, last poll of each tracked collection it reads, what was
    published to it but not yet delivered (and the oldest of that), acknowledgements pending."""
    service.catch_up()
    store, since = service.store, service.retained_since
    polls = defaultdict(dict)
    for poll in store.last_polls():
        polls[poll.operator_id][poll.collection_id] = poll.at
    every_published = tuple(dict.fromkeys(c.id for op in scope.licensees(service.settings)
                                          for c in service.exchange.published_to(op)))
    pending = store.unacknowledged_versions(every_published)
    undelivered = _undelivered(service, since)
    rows = []
    for licensee in scope.licensees(service.settings):
        count, oldest = undelivered.get(licensee.id, (0, None))
        key_uses = [key.last_used for key in store.list_keys(licensee.id) if key.last_used]
        last_request = max([*key_uses, *polls[licensee.id].values()], default=None)
        rows.append({
            "operator": licensee.id,
            "name": licensee.name,
            "last_request": _when(last_request),
            "last_polls": {_name(c): _when(polls[licensee.id].get(c.id))
                           for c in scope.tracked(service.settings) if c in service.exchange.readable_by(licensee)},
            "undelivered": count,
            "oldest_undelivered": _when(oldest),
            "acknowledgements_pending": pending.get(licensee.id, 0),
        })
    return rows


def sighting_rows(service: ComplianceService) -> list[dict]:
    """Per indicator: licensees that saw it, total sightings, false-positive reports, first and last seen."""
    service.catch_up()
    seen: dict[str, dict] = {}

    def entry(indicator_id: str) -> dict:
        return seen.setdefault(indicator_id, {"indicator_id": indicator_id, "operators": set(), "sightings": 0,
                                              "false_positives": 0, "first_seen": None, "last_seen": None})

    for sighting in service.store.sightings():
        row = entry(sighting.indicator_id)
        row["operators"].add(sighting.operator_id)
        row["sightings"] += sighting.count
        row["first_seen"] = min(filter(None, (row["first_seen"], sighting.first_seen)))
        row["last_seen"] = max(filter(None, (row["last_seen"], sighting.last_seen)))
    for report in service.store.false_positives():
        entry(report.indicator_id)["false_positives"] += 1
    return [{**row, "operators": len(row["operators"]), "first_seen": _when(row["first_seen"]),
             "last_seen": _when(row["last_seen"])} for _, row in sorted(seen.items())]


def acknowledgement_rows(service: ComplianceService, since: int | None = None) -> list[dict]:
    """Every acknowledgement, oldest first, with its status."""
    service.catch_up()
    return [{"operator": ack.operator_id, "object_id": ack.object_id, "acknowledged_at": _when(ack.acked_at),
             "value": ack.value, "status": ack.status, "by": ack.ack_id, "by_version": ack.ack_version}
            for ack in service.store.acknowledgements(since)]


def since(text: str, now: int | None = None) -> int:
    """`--since`: an RFC 3339 timestamp, or a duration back from now (`7d`, `12h`, `30m`, `45s`)."""
    match = _DURATION.fullmatch(text)
    if match:
        seconds = int(match.group(1)) * _UNIT[match.group(2)]
        if seconds > MAX_SINCE_DAYS * 86_400:
            raise ValueError(f"{text!r} reaches back more than {MAX_SINCE_DAYS} days")
        return (now if now is not None else now_micros()) - seconds * 1_000_000
    try:
        return parse_timestamp(text)
    except TimestampError:
        raise ValueError(f"{text!r} is neither a timestamp nor a duration such as 7d") from None


MAX_SINCE_DAYS = 36_500
_DURATION = re.compile(r"(\d{1,9})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ids(service: ComplianceService, collections: tuple[Collection, ...] | None) -> tuple[str, ...]:
    return tuple(c.id for c in (collections if collections is not None else scope.tracked(service.settings)))


def _licensee_ids(service: ComplianceService) -> tuple[str, ...]:
    return tuple(op.id for op in scope.licensees(service.settings))


def _undelivered(service: ComplianceService, since: int) -> dict[str, tuple[int, int | None]]:
    """Per licensee: latest versions published to it and never delivered, and the oldest one's date_added."""
    totals: dict[str, tuple[int, int | None]] = {}
    for collection in scope.tracked(service.settings):
        readers = tuple(op.id for op in scope.licensees(service.settings)
                        if collection in service.exchange.published_to(op))
        if not readers:
            continue
        for operator_id, (count, oldest) in service.store.undelivered(collection.id, readers, since).items():
            total, first = totals.get(operator_id, (0, None))
            totals[operator_id] = total + count, min(filter(None, (first, oldest)), default=None)
    return totals


def _collection_names(service: ComplianceService) -> dict[str, str]:
    return {c.id: _name(c) for c in service.settings.collections}


def _name(collection: Collection | None, fallback: str = "") -> str:
    return (collection.alias or collection.id) if collection is not None else fallback


def _when(micros: int | None) -> str | None:
    return format_timestamp(micros) if micros else None
