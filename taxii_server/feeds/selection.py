"""Which entries a feed request gets: its filters, deduplication and the limit."""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import bad_request
from ..storage.base import FeedEntry, Store
from .index import TLP_LEVELS

MAX_LIMIT = 10_000_000
_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TLP_ALIASES = {"white": "clear"}


@dataclass(frozen=True)
class FeedFilters:
    limit: int | None = None
    min_confidence: int | None = None
    max_tlp: int | None = None
    types: frozenset[str] = frozenset()
    comments: bool = True

    def describe(self) -> str:
        """The filters as text, in a fixed order: for the list's comments and its ETag."""
        parts = []
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        if self.min_confidence is not None:
            parts.append(f"min_confidence={self.min_confidence}")
        if self.max_tlp is not None:
            parts.append(f"max_tlp={TLP_LEVELS[self.max_tlp]}")
        if self.types:
            parts.append("types=" + ",".join(sorted(self.types)))
        return " ".join(parts)


def parse_filters(args: Mapping[str, str]) -> FeedFilters:
    """`?limit=&min_confidence=&max_tlp=&types=&comments=`; 400 on a malformed value."""
    max_tlp = args.get("max_tlp")
    if max_tlp is not None:
        level = _TLP_ALIASES.get(max_tlp.lower(), max_tlp.lower())
        if level not in TLP_LEVELS[1:]:
            raise bad_request("max_tlp must be one of clear, green, amber, amber+strict, red "
                              "(in a URL, write amber+strict as amber%2Bstrict).")
        max_tlp = TLP_LEVELS.index(level)
    types = frozenset(filter(None, args.get("types", "").split(",")))
    if len(types) > 20 or not all(_TYPE.match(name) for name in types):
        raise bad_request("types must be up to 20 comma-separated indicator types, such as malicious-activity.")
    comments = args.get("comments", "1")
    if comments not in ("0", "1"):
        raise bad_request("comments must be 0 or 1.")
    return FeedFilters(limit=_integer(args, "limit", 1, MAX_LIMIT), min_confidence=_integer(args, "min_confidence", 0, 100),
                       max_tlp=max_tlp, types=types, comments=comments == "1")


def _integer(args: Mapping[str, str], name: str, lowest: int, highest: int) -> int | None:
    text = args.get(name)
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or not lowest <= int(text) <= highest:
        raise bad_request(f"{name} must be a whole number from {lowest} to {highest}.")
    return int(text)


def select_entries(store: Store, collection_id: str, kinds: tuple[str, ...], filters: FeedFilters,
                   now: int) -> list[FeedEntry]:
    """The active entries, each value once (its best-ranked indicator), best first, at most `limit`."""
    streams = [store.feed_entries(collection_id, kind, now, filters.min_confidence, filters.max_tlp) for kind in kinds]
    ranked = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_rank)
    try:
        return _first_distinct(((entry, (entry.kind, entry.value), entry.indicator_types) for entry in ranked),
                               filters)
    finally:
        for stream in streams:
            stream.close()


def select_values(store: Store, collection_id: str, kind: str, filters: FeedFilters, now: int) -> list[str]:
    """The same for a one-value-a-line list: the values alone, read without a record per entry."""
    stream = store.feed_values(collection_id, kind, now, filters.min_confidence, filters.max_tlp)
    try:
        return _first_distinct(((value, value, types) for value, types in stream), filters)
    finally:
        stream.close()


def _first_distinct(ranked, filters: FeedFilters) -> list:
    """Items in order, each key once, that pass the types filter; at most `limit` of them."""
    chosen: list = []
    seen: set = set()
    for item, key, indicator_types in ranked:
        if key in seen or (filters.types and filters.types.isdisjoint(indicator_types.split(","))):
            continue
        seen.add(key)
        chosen.append(item)
        if filters.limit is not None and len(chosen) >= filters.limit:
            break
    return chosen


def _rank(entry: FeedEntry) -> tuple[int, int]:
    return -entry.confidence, -entry.date_added
