"""Keeping each collection's feed entries current without touching the write path.

Every version of every indicator is read once: `FeedIndex.refresh` reads the
collection onwards from the stored cursor (a `date_added`, so a keyset read of only
what is new), turns each indicator's latest version into feed entries, and moves
the cursor in the same atomic write. A newer version replaces the entries of the
older; a revoked one removes them; an older version read later changes nothing.
Expiry needs no write at all: feeds filter on valid_from <= now < valid_until.

Several processes may refresh at once: the write is a compare-and-set on the
state, so one wins and the others read the state again and carry on from it.
When the safety rules change (their fingerprint differs from the stored one),
the collection's entries are built again from the start, once.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from ..sharing.tlp import LEVEL_OF_MARKING
from ..storage.base import (FOREVER, FeedEntry, FeedIndicator, FeedState, ObjectQuery, Store, StoredVersion,
                            VersionFilter)
from ..timestamps import TimestampError, now_micros, parse_timestamp
from .patterns import NotPlain, plain_values
from .safety import Checked, InvalidValue, SafetyRules, check

# The TLP levels a feed entry carries, by rank (sharing/tlp.py's, one up): 0 is unmarked.
TLP_LEVELS = ("unmarked", "clear", "green", "amber", "amber+strict", "red")
READ_BATCH = 2000
_NAME_LENGTH = 200


class FeedIndex:
    """The feed entries of every collection, brought up to date on demand."""

    def __init__(self, store: Store, rules: SafetyRules, now: Callable[[], int] = now_micros,
                 batch: int = READ_BATCH):
        self.store, self.rules, self.now, self.batch = store, rules, now, batch

    def refresh(self, collection_id: str) -> FeedState:
        """Read what the collection gained since the last refresh; return the state now held."""
        while True:
            state = self.store.feed_state(collection_id)
            start_over = state is None or state.rules != self.rules.fingerprint
            cursor = 0 if start_over else state.cursor
            page = self.store.query(ObjectQuery(collection_id=collection_id, limit=self.batch, types=("indicator",),
                                                versions=VersionFilter.every(), after_position=cursor or None))
            removed = [] if page.more else self.store.removals(collection_id, 0 if start_over else state.removals,
                                                                 self.batch)
            if not page.records and not removed and not start_over:
                return state
            changes = {change.indicator_id: change for change in self._changes(collection_id, page.records, start_over)}
            changes.update(self._current_versions(collection_id, removed))  # what remains after a deletion decides
            changes = list(changes.values())
            now = self.now()
            changed = changes or start_over
            moved = FeedState(cursor=page.records[-1].date_added if page.records else cursor,
                              # Strictly later on every change, whatever the clock does: ETags follow it.
                              changed_at=max(now, state.changed_at + 1) if state and changed else
                              now if changed else state.changed_at,
                              rules=self.rules.fingerprint,
                              removals=removed[-1][0] if removed else 0 if start_over else state.removals)
            applied = self.store.apply_feed_changes(collection_id, state, moved, changes, start_over=start_over,
                                                    purge_until=now if changes else None)
            if applied and not page.more and len(removed) < self.batch:
                return moved
            # Applied with more to read, or another process moved first: read the state again.

    def _current_versions(self, collection_id: str, removed: list[tuple[int, str]]) -> dict[str, FeedIndicator]:
        """For indicators that lost versions to a deletion: what their latest remaining version
        contributes, or nothing (version -1, so that any version stored again counts) when none remains."""
        current = {}
        for object_id in dict.fromkeys(object_id for _, object_id in removed):
            if object_id.startswith("indicator--"):
                page = self.store.query(ObjectQuery(collection_id=collection_id, limit=1, object_id=object_id))
                current[object_id] = (feed_indicator(page.records[0], self.rules) if page.records else
                                      FeedIndicator(object_id, version_key=-1))
        return current

    def _changes(self, collection_id: str, records: list[StoredVersion], start_over: bool) -> list[FeedIndicator]:
        """The latest version in `records` of each indicator, where it is newer than the one held."""
        latest: dict[str, FeedIndicator] = {}
        for record in records:
            indicator = feed_indicator(record, self.rules)
            held = latest.get(indicator.indicator_id)
            if held is None or indicator.version_key > held.version_key:
                latest[indicator.indicator_id] = indicator
        if start_over or not latest:
            return list(latest.values())
        known = self.store.feed_indicator_versions(collection_id, sorted(latest))
        return [indicator for indicator_id, indicator in latest.items()
                if indicator.version_key > known.get(indicator_id, -1)]


def feed_indicator(record: StoredVersion, rules: SafetyRules) -> FeedIndicator:
    """What one stored indicator version contributes to its collection's feeds."""
    body = orjson.loads(record.body)
    version_key = parse_timestamp(record.version)
    valid_until = _timestamp(body.get("valid_until"), FOREVER)
    if body.get("revoked") is True:
        return FeedIndicator(record.object_id, version_key, valid_until)
    if body.get("pattern_type") != "stix":
        return FeedIndicator(record.object_id, version_key, valid_until,
                             left_out=f"pattern_type {body.get('pattern_type')!r} is not stix")
    try:
        values = plain_values(body.get("pattern", ""))
    except NotPlain as why:
        return FeedIndicator(record.object_id, version_key, valid_until, left_out=f"pattern {why}")
    common = dict(indicator_id=record.object_id, date_added=record.date_added,
                  valid_from=_timestamp(body.get("valid_from"), 0), valid_until=valid_until,
                  confidence=body.get("confidence", -1), tlp=_tlp(body.get("object_marking_refs") or ()),
                  indicator_types=",".join(body.get("indicator_types") or ()),
                  name=_one_line(str(body.get("name", ""))))
    entries: dict[tuple[str, str], FeedEntry] = {}
    for plain in values:
        checked = _checked(plain.kind, plain.value, rules)
        entries.setdefault((plain.kind, checked.value),
                           FeedEntry(kind=plain.kind, value=checked.value, held=checked.held, **common))
    return FeedIndicator(record.object_id, version_key, valid_until, entries=tuple(entries.values()))


def _checked(kind: str, value: str, rules: SafetyRules) -> Checked:
    try:
        return check(kind, value, rules)
    except InvalidValue as why:
        return Checked(value[:_NAME_LENGTH], f"invalid: {why}")


def _one_line(text: str) -> str:
    """The indicator's name as a CSV comment: printable characters on one line, of bounded length."""
    return "".join(ch for ch in " ".join(text.split()) if ch.isprintable())[:_NAME_LENGTH]


def _tlp(marking_refs) -> int:
    """0 when unmarked, else 1 (CLEAR) to 5 (RED): the sharing rules' levels, one up."""
    return max((LEVEL_OF_MARKING[ref] + 1 for ref in marking_refs if ref in LEVEL_OF_MARKING), default=0)


def _timestamp(text, default: int) -> int:
    try:
        return parse_timestamp(text) if isinstance(text, str) else default
    except TimestampError:
        return default
