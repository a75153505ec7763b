"""A collection's objects for people: newest first, filtered, in keyset pages.

Every page walks the index of latest versions backwards from a position
(`date_added`), so paging costs the same at any depth and at any size. The
date range narrows that walk in the index itself. Type, TLP and text are read
from the objects the walk passes, and the walk stops after `scan_budget`
versions whatever it found: a rare match far back costs several pages, never
an unbounded scan. The page then says how far it looked and continues from
there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from ..storage.base import Store, StoredVersion
from .stix_view import searchable_text, tlp_of

PAGE_SIZE = 50
SCAN_BUDGET = 2_000
_BATCH = 500


@dataclass(frozen=True)
class Filters:
    types: tuple[str, ...] = ()
    tlp: str = ""            # a TLP level, "none" for unmarked, "" for any
    text: str = ""
    added_from: int | None = None   # inclusive
    added_until: int | None = None  # inclusive

    @property
    def read_objects(self) -> bool:
        """Whether matching needs the objects themselves, not only the index."""
        return bool(self.tlp or self.text)

    def match(self, record: StoredVersion, obj: dict) -> bool:
        if self.types and record.type not in self.types:
            return False
        if self.tlp and tlp_of(obj) != self.tlp:
            return False
        return not self.text or self.text.lower() in searchable_text(obj)


@dataclass(frozen=True)
class Listed:
    record: StoredVersion
    obj: dict


@dataclass
class Listing:
    items: list[Listed] = field(default_factory=list)
    scanned: int = 0
    # Where the next page starts (exclusive upper bound on date_added); None when the walk reached the end.
    next_before: int | None = None
    # True when the page stopped because it had looked at `scan_budget` versions, not because it was full.
    budget_spent: bool = False


def list_objects(store: Store, collection_id: str, filters: Filters, before: int | None = None,
                 page_size: int = PAGE_SIZE, scan_budget: int = SCAN_BUDGET) -> Listing:
    listing = Listing()
    position = before
    if filters.added_until is not None:
        position = filters.added_until + 1 if position is None else min(position, filters.added_until + 1)
    since = None if filters.added_from is None else filters.added_from - 1
    selective = bool(filters.types) or filters.read_objects
    while len(listing.items) < page_size:
        if listing.scanned >= scan_budget:
            listing.budget_spent = True
            listing.next_before = position
            return listing
        wanted = min(_BATCH, scan_budget - listing.scanned) if selective else page_size - len(listing.items) + 1
        batch = store.recent_versions(collection_id, limit=wanted, before=position, since=since)
        for record in batch:
            if len(listing.items) == page_size:  # one more exists past a full page
                listing.next_before = position
                return listing
            listing.scanned += 1
            position = record.date_added
            if filters.types and record.type not in filters.types:
                continue
            obj = orjson.loads(record.body)
            if filters.match(record, obj):
                listing.items.append(Listed(record, obj))
        if len(batch) < wanted:
            return listing  # the walk reached the start of the collection (or of the date range)
    listing.next_before = position
    return listing
