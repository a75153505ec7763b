"""Bookmarks cut to milliseconds (architecture rule 7), on every backend.

OpenCTI's platform ingestion keeps X-TAXII-Date-Added-Last through moment()
(opencti-graphql src/manager/ingestionManager.ts, processTaxiiResponse), so its
next `added_after` has three fractional digits. The store and the query parser
together make such a bookmark exact:

- no millisecond holds versions of two writes (storage/planning.py), and
- `added_after` with at most three fractional digits means "after the end of
  that millisecond" (timestamps.parse_added_after).

A poll's last page (`more` false) ends at the end of a write, so the cut
bookmark of a poll names a place with everything before it seen and nothing
after it that could still land in its millisecond. The pollers here keep the
cut header of every page, follow `next` within a poll as every client does,
and start each poll from the bookmark the last one left, while several writers
commit at once.
"""

from __future__ import annotations

import threading
import time

import pytest
from test_storage_contract import (backend, backend_url, collection, concurrent_writers,  # noqa: F401 (fixtures)
                                   everything, keys_of, version)

from taxii_server.storage import open_store
from taxii_server.storage.base import NewVersion, ObjectQuery, Store, VersionFilter, VersionRecord
from taxii_server.storage.planning import plan_additions
from taxii_server.timestamps import format_timestamp, millisecond_of, now_micros, parse_added_after

WRITERS, WRITES_PER_WRITER = 3, 30


def cut_to_the_millisecond(header: str) -> str:
    """What moment().toISOString() makes of X-TAXII-Date-Added-Last: 2026-11-29T10:00:00.123Z."""
    return header[:23] + "Z"


class MillisecondPoller:
    """A client that keeps every page's X-TAXII-Date-Added-Last cut to the millisecond,
    follows `next` while `more` is true, and starts each poll from its bookmark."""

    def __init__(self, store: Store, collection_id: str, limit: int):
        self.store, self.collection_id, self.limit = store, collection_id, limit
        self.bookmark: str | None = None
        self.seen: list = []

    def poll(self) -> int:
        """One poll; how many versions it got."""
        added_after = parse_added_after(self.bookmark) if self.bookmark else None
        position, got = None, 0
        while True:
            page = self.store.query(ObjectQuery(collection_id=self.collection_id, limit=self.limit,
                                                versions=VersionFilter.every(), added_after=added_after,
                                                after_position=position, with_body=False))
            self.seen += page.records
            got += len(page.records)
            if page.records:
                self.bookmark = cut_to_the_millisecond(format_timestamp(page.records[-1].date_added))
            if not page.more:
                return got
            position = page.records[-1].date_added


def write_batches(url: str, collection_id: str, writer: int, start) -> None:
    """One writer: writes of 1 to 12 versions, some of them new versions of objects written before."""
    start.wait(60)
    store = open_store(url)
    try:
        for call in range(WRITES_PER_WRITER):
            batch = [version(100_000 * writer + 100 * call + n) for n in range(new_objects(writer, call))]
            if call % 4 == 3:
                batch.append(version(100_000 * writer + 100 * (call - 1), on=2))
            assert all(outcome.stored for outcome in store.add_versions(collection_id, batch))
    finally:
        store.close()


def new_objects(writer: int, call: int) -> int:
    return 1 + (call * 7 + writer * 5) % 12


def batch_size(writer: int, call: int) -> int:
    """How many versions a writer's call stores: its new objects, and every fourth call a new version."""
    return new_objects(writer, call) + (call % 4 == 3)


def record_of(new: NewVersion, date_added: int) -> VersionRecord:
    """A version as `migrate` copies it, with its own date_added."""
    return VersionRecord(new.object_id, new.type, new.version, new.version_key, new.spec_version, date_added,
                         new.content_hash, new.body)


def writes_by_millisecond(records) -> dict[int, set[int]]:
    """For each millisecond, which writes stored in it. A write is told apart by the object
    numbers `version(100 * write + n)` it adds; a second version (day 2) comes one write later."""
    by_millisecond: dict[int, set] = {}
    for record in records:
        number = int(record.object_id.rsplit("-", 1)[1], 16)  # the indicator's n, as `version` makes its id
        write = number // 100 + record.version.startswith("2026-01-02")
        by_millisecond.setdefault(millisecond_of(record.date_added), set()).add(write)
    return by_millisecond


# -- the rule ------------------------------------------------------------------------------------------------------

def test_a_write_never_starts_in_the_millisecond_of_the_write_before():
    clock = 1_764_410_000_123_456  # the last version stored: ...00.123456
    for now in (clock - 5_000, clock - 1, clock, clock + 1, clock + 543):  # the clock's millisecond or earlier
        plan = plan_additions([version(1), version(2)], {}, clock, lambda: now)
        assert [r.date_added for r in plan.records] == [1_764_410_000_124_000, 1_764_410_000_124_001]
    later = clock + 544  # ...00.124000: a millisecond no write has used
    plan = plan_additions([version(1), version(2)], {}, clock, lambda: later)
    assert [r.date_added for r in plan.records] == [later, later + 1]


def test_no_millisecond_holds_versions_of_two_writes(backend, collection):
    for call in range(150):  # back to back: many fall in the millisecond the write before ended in
        backend.add_versions(collection, [version(100 * call + n) for n in range(1 + call % 4)])
    records = everything(backend, collection)
    assert len(records) == sum(1 + call % 4 for call in range(150))
    assert all(len(writes) == 1 for writes in writes_by_millisecond(records).values())
    dates = [r.date_added for r in records]
    assert all(earlier < later for earlier, later in zip(dates, dates[1:]))


def test_a_write_after_an_import_starts_after_the_imported_millisecond(backend, collection):
    """`migrate` keeps date_added; the next write still starts in a millisecond of its own."""
    imported = record_of(version(1), date_added=now_micros() + 10_000_000 + 500)  # after now, inside a millisecond
    assert backend.import_versions(collection, [imported]) == 1
    backend.add_versions(collection, [version(2)])
    first, second = everything(backend, collection)
    assert millisecond_of(second.date_added) == millisecond_of(first.date_added) + 1


# -- pollers and writers at once -----------------------------------------------------------------------------------

def test_a_whole_write_polled_with_a_cut_bookmark_is_not_read_again(backend, collection):
    """The issue as filed: a POST of many objects sat in one or two milliseconds, and a
    cut bookmark re-read its tail on every poll. Now the idle polls settle."""
    backend.add_versions(collection, [version(n) for n in range(300)])
    poller = MillisecondPoller(backend, collection, limit=40)
    assert poller.poll() == 300
    assert [poller.poll() for _ in range(3)] == [0, 0, 0]
    backend.add_versions(collection, [version(1000)])
    assert poller.poll() == 1 and poller.poll() == 0
    assert keys_of(poller.seen) == keys_of(everything(backend, collection))


@pytest.mark.parametrize("writers_in", ["threads", "processes"])
def test_pollers_keeping_cut_bookmarks_see_every_version_once_while_several_writers_commit(
        backend, backend_url, collection, writers_in):
    start, writers = concurrent_writers(writers_in, write_batches, backend_url, collection, WRITERS)
    pollers = [MillisecondPoller(backend, collection, limit) for limit in (3, 7, 100)]
    stop = threading.Event()

    def keep_polling(poller: MillisecondPoller) -> None:
        while not stop.is_set():
            if not poller.poll():
                time.sleep(0.001)

    polling = [threading.Thread(target=keep_polling, args=(poller,), daemon=True) for poller in pollers]
    for worker in [*writers, *polling]:
        worker.start()
    try:
        start.set()
        for writer in writers:
            writer.join(120)
    finally:
        stop.set()
        for thread in polling:
            thread.join(60)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS

    stored = everything(backend, collection)
    assert len(stored) == sum(batch_size(writer, call) for writer in range(WRITERS) for call in range(WRITES_PER_WRITER))
    assert all(len(writes) == 1 for writes in writes_by_millisecond(stored).values())
    for poller in pollers:
        while poller.poll():  # catch up after the last write; then it is idle
            pass
        assert [poller.poll() for _ in range(2)] == [0, 0], "an idle poll read something again"
        assert keys_of(poller.seen) == keys_of(stored), f"the poller with limit {poller.limit} missed or re-read"
