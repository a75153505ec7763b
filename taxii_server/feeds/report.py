"""The feed report: what the feeds held back or left out, and why.

Plain rows for the regulator, whichever way they are shown (`taxii-server feeds
report`, GET /feeds/report, a page). Only indicators valid now are listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..config import Collection
from .index import FeedIndex

HELD_BACK = "held back"
LEFT_OUT = "left out"


@dataclass(frozen=True)
class ReportRow:
    collection_id: str
    collection_title: str
    indicator_id: str
    outcome: str          # HELD_BACK: a value a safety rule or its form kept off the lists; LEFT_OUT: a whole indicator
    reason: str
    kind: str = ""
    value: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def feed_report(index: FeedIndex, collections: Iterable[Collection], limit: int = 10_000) -> list[ReportRow]:
    """Up to `limit` held-back values and `limit` left-out indicators per collection, feeds brought up to date first."""
    rows: list[ReportRow] = []
    for collection in collections:
        index.refresh(collection.id)
        held, left_out = index.store.feed_exclusions(collection.id, index.now(), limit)
        rows += [ReportRow(collection.id, collection.title, entry.indicator_id, HELD_BACK, entry.held or "",
                           entry.kind, entry.value) for entry in held]
        rows += [ReportRow(collection.id, collection.title, indicator.indicator_id, LEFT_OUT, indicator.left_out or "")
                 for indicator in left_out]
    return rows


def summarize(rows: Iterable[ReportRow]) -> list[dict]:
    """Counts per collection, outcome and reason (without the pattern excerpt a reason may quote)."""
    counts = Counter((row.collection_title, row.outcome, row.reason.split(" (at ")[0]) for row in rows)
    return [{"collection": title, "outcome": outcome, "reason": reason, "count": count}
            for (title, outcome, reason), count in sorted(counts.items())]
