"""The feed storage of both backends, through the Store interface: the compare-and-set that
lets several processes keep feed entries current, expiry as a filter, and the removals log."""

from __future__ import annotations

import pytest

from conftest import COMMUNITY, indicator
from taxii_server.feeds.index import FeedIndex
from taxii_server.feeds.safety import SafetyRules
from taxii_server.storage.base import FeedEntry, FeedIndicator, FeedState, VersionFilter
from taxii_server.validation import check_object

pytestmark = pytest.mark.every_backend


def entry(value: str, indicator_id: str = "indicator--1", **fields) -> FeedEntry:
    return FeedEntry(kind="ipv4", value=value, indicator_id=indicator_id, date_added=1, valid_from=0, **fields)


def test_a_stale_state_writes_nothing(store):
    first = FeedState(cursor=10, changed_at=1, rules="r")
    assert store.apply_feed_changes(COMMUNITY, None, first, [FeedIndicator("indicator--1", 1, entries=(entry("1.1.1.1"),))])
    assert not store.apply_feed_changes(COMMUNITY, None, FeedState(cursor=20, changed_at=2, rules="r"), [])
    stale = FeedState(cursor=5, changed_at=1, rules="r")
    assert not store.apply_feed_changes(COMMUNITY, stale, FeedState(cursor=30, changed_at=3, rules="r"),
                                        [FeedIndicator("indicator--1", 2)])
    assert store.feed_state(COMMUNITY) == first
    assert [e.value for e in store.feed_entries(COMMUNITY, "ipv4", now=100)] == ["1.1.1.1"]


def test_entries_are_filtered_by_validity_and_the_last_boundary_follows_the_clock(store):
    state = FeedState(cursor=1, changed_at=1, rules="r")
    store.apply_feed_changes(COMMUNITY, None, state, [
        FeedIndicator("indicator--1", 1, entries=(entry("1.1.1.1", valid_until=50),)),
        FeedIndicator("indicator--2", 1, entries=(entry("2.2.2.2", "indicator--2")._replace(valid_from=40),)),
    ])
    assert [e.value for e in store.feed_entries(COMMUNITY, "ipv4", now=39)] == ["1.1.1.1"]
    assert sorted(e.value for e in store.feed_entries(COMMUNITY, "ipv4", now=40)) == ["1.1.1.1", "2.2.2.2"]
    assert [e.value for e in store.feed_entries(COMMUNITY, "ipv4", now=50)] == ["2.2.2.2"]
    assert [store.feed_last_boundary(COMMUNITY, "ipv4", now) for now in (39, 40, 49, 50, 99)] == [0, 40, 40, 50, 50]


def test_deletions_are_logged_in_order_for_each_collection(store):
    items = [indicator(n) for n in range(3)]
    store.add_versions(COMMUNITY, [check_object(item) for item in items])
    for item in (items[2], items[0]):
        store.delete_versions(COMMUNITY, item["id"], VersionFilter.every(), ())
    logged = store.removals(COMMUNITY, 0, 10)
    assert [object_id for _, object_id in logged] == [items[2]["id"], items[0]["id"]]
    assert store.removals(COMMUNITY, logged[0][0], 10) == logged[1:]
    assert store.removals("another-collection", 0, 10) == []


class RacedStore:
    """The store, where another process completes a whole refresh just before this one's first write."""

    def __init__(self, store, rival: FeedIndex):
        self.store, self.rival, self.raced = store, rival, False

    def apply_feed_changes(self, *args, **kwargs):
        if not self.raced:
            self.raced = True
            self.rival.refresh(COMMUNITY)
        return self.store.apply_feed_changes(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_refresh_that_loses_the_race_carries_on_from_the_winners_state(store):
    store.add_versions(COMMUNITY, [check_object(indicator(n, pattern=f"[ipv4-addr:value = '203.0.114.{n}']"))
                                   for n in range(1, 8)])
    rules = SafetyRules.build()
    raced = RacedStore(store, FeedIndex(store, rules, batch=3))
    state = FeedIndex(raced, rules, batch=2).refresh(COMMUNITY)
    assert raced.raced and state == store.feed_state(COMMUNITY)
    assert sorted(e.value for e in store.feed_entries(COMMUNITY, "ipv4", now=2 ** 60)) == \
        [f"203.0.114.{n}" for n in range(1, 8)]
