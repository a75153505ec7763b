"""Acknowledgements: a licensee's `opinion` or `note` whose `object_refs` name
objects published to it (the advisories).

Each named object gets a record with a status:
- `acknowledged`: the licensee had been sent a version of it; every delivery of
  it made up to the acknowledgement is marked acknowledged at that time;
- `not-delivered`: it may read the object but had not been sent any version;
- `not-readable`: the exchange holds no object with that id that it may read.
Named objects the licensee may write itself (its own reports, community
sharing) are not acknowledgements and are passed over, as is an object that
names objects created by its own creator (the publisher commenting on its own
publication, e.g. a directed alert).
"""

from __future__ import annotations

from dataclasses import replace

from ..config import Operator
from ..storage.base import Acknowledgement
from .reading import Exchange, ReportedObject

ACKNOWLEDGING_TYPES = frozenset({"opinion", "note"})
ACKNOWLEDGED, NOT_DELIVERED, NOT_READABLE = "acknowledged", "not-delivered", "not-readable"
# A delivery reaches the store within FLUSH_INTERVAL (deliveries.py) of being made: until
# this long after an acknowledgement, a delivery made before it may still arrive.
SETTLE_MICROS = 10_000_000
# One opinion may name many objects; past this many the rest are not read.
MAX_REFS = 1000


def record_acknowledgements(exchange: Exchange, licensee: Operator, reported: ReportedObject, now: int) -> None:
    obj = reported.body
    if obj.get("type") not in ACKNOWLEDGING_TYPES:
        return
    refs = obj.get("object_refs")
    if not isinstance(refs, list):
        return
    value = str(obj.get("opinion", "")) if obj["type"] == "opinion" else "note"
    for ref in dict.fromkeys(r for r in refs[:MAX_REFS] if isinstance(r, str)):
        status, collection_id = _status(exchange, licensee, reported, ref)
        if status is None:
            continue
        ack = Acknowledgement(licensee.id, ref, obj["id"], reported.version, collection_id, reported.received_at,
                              value, status, settled=status == NOT_READABLE)
        exchange.store.save_acknowledgement(settle(exchange, licensee, ack, now))


def settle(exchange: Exchange, licensee: Operator, ack: Acknowledgement, now: int) -> Acknowledgement:
    """Apply the acknowledgement to the deliveries made up to it, and say whether
    any such delivery could still be on its way to the store."""
    if ack.status == NOT_READABLE:
        return ack
    published = tuple(c.id for c in exchange.published_to(licensee))
    delivered = exchange.store.has_delivery(licensee.id, ack.object_id, published, ack.acked_at)
    if delivered:
        exchange.store.mark_acknowledged(licensee.id, ack.object_id, published, ack.acked_at)
    return replace(ack, status=ACKNOWLEDGED if delivered else NOT_DELIVERED,
                   settled=now >= ack.acked_at + SETTLE_MICROS)


def settle_recent(exchange: Exchange, now: int) -> None:
    for ack in exchange.store.acknowledgements(unsettled_only=True):
        licensee = exchange.settings.operators.get(ack.operator_id)
        if licensee is not None:
            exchange.store.save_acknowledgement(settle(exchange, licensee, ack, now))


def _status(exchange: Exchange, licensee: Operator, reported: ReportedObject, ref: str) -> tuple[str | None, str]:
    """(status, the published collection holding `ref`), or (None, "") when `ref` is not acknowledged."""
    holding = exchange.holding(ref, exchange.readable_by(licensee))
    if not holding:
        return NOT_READABLE, ""
    published_ids = {c.id for c in exchange.published_to(licensee)}
    published = [c for c in holding if c.id in published_ids]
    if not published or exchange.same_creator(reported.body, published[0].id, ref):
        return None, ""
    return NOT_DELIVERED, published[0].id  # settle() decides between this and acknowledged
