"""Reads made again: the SQLite backend answers a repeated page, and a request's
API key, from memory (storage/page_cache.py), and every change to the store, by
whoever makes it, is in the next read. The cases about what a reader sees run on
every backend: a cache must not change what the store answers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest
from backends import BACKENDS, discard, require_shared_store
from conftest import indicator

from taxii_server.storage import open_store
from taxii_server.storage.base import ApiKeyRecord, ObjectQuery, Page, StoredVersion, VersionFilter
from taxii_server.storage.page_cache import MAX_BYTES, MAX_PAGE_BYTES, MAX_PAGES, PageCache
from taxii_server.validation import check_object

COLLECTION = "0e4f3d6a-58a1-4c52-9d1e-7b8c9a0f1e2d"


@pytest.fixture(params=sorted(BACKENDS))
def store_url(request, tmp_path):
    url = BACKENDS[request.param](tmp_path)
    yield url
    discard(url)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


def first_page(store, limit: int = 100) -> Page:
    return store.query(ObjectQuery(collection_id=COLLECTION, limit=limit))


def ids(page: Page) -> list[str]:
    return [record.object_id for record in page.records]


def add(store, *numbers: int, modified: str = "2026-01-01T00:00:00.000Z") -> None:
    store.add_versions(COLLECTION, [check_object(indicator(n, modified=modified)) for n in numbers])


def in_a_thread(work):
    """Run `work` in another thread, which has its own connection to a SQLite store."""
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(work()))
    thread.start()
    thread.join()
    return outcome[0]


# -- what every reader sees, on every backend ------------------------------------------------------------

def test_a_page_read_again_is_the_same_page(store):
    add(store, 1, 2, 3)
    assert ids(first_page(store)) == ids(first_page(store)) == ids(first_page(store, limit=3))


def test_an_object_added_through_another_connection_is_in_the_next_page(store):
    add(store, 1)
    assert len(first_page(store).records) == 1
    in_a_thread(lambda: add(store, 2))
    assert len(first_page(store).records) == 2


def test_an_object_added_through_the_same_connection_is_in_the_next_page(store):
    add(store, 1)
    assert len(first_page(store).records) == 1
    add(store, 2)
    assert len(first_page(store).records) == 2


def test_a_new_version_replaces_the_old_one_in_the_next_page_of_latest_versions(store):
    add(store, 1)
    before = first_page(store).records[0].version
    in_a_thread(lambda: add(store, 1, modified="2026-02-01T00:00:00.000Z"))
    assert [record.version for record in first_page(store).records] != [before]
    assert len(first_page(store).records) == 1


def test_a_deleted_object_is_gone_from_the_next_page(store):
    add(store, 1, 2)
    assert len(first_page(store).records) == 2
    victim = first_page(store).records[0].object_id
    in_a_thread(lambda: store.delete_versions(COLLECTION, victim, VersionFilter.every(), ()))
    assert victim not in ids(first_page(store))


def test_an_object_added_by_another_process_is_in_the_next_page(store, store_url):
    require_shared_store(store_url)
    add(store, 1)
    assert len(first_page(store).records) == 1
    script = ("import sys; from conftest import indicator; from taxii_server.storage import open_store; "
              "from taxii_server.validation import check_object; "
              "open_store(sys.argv[1]).add_versions(sys.argv[2], [check_object(indicator(2))])")
    subprocess.run([sys.executable, "-c", script, store_url, COLLECTION], check=True, cwd="tests")
    assert len(first_page(store).records) == 2


def test_changing_the_page_handed_out_does_not_change_the_next_one(store):
    add(store, 1, 2)
    handed_out = first_page(store)
    handed_out.records.clear()
    assert len(first_page(store).records) == 2


def a_request(store, work):
    """`work` as one request's reads: between begin_reading and end_reading, as the application does."""
    store.begin_reading()
    try:
        return work()
    finally:
        store.end_reading()


KEY = ApiKeyRecord(key_id="0123456789ab", operator_id="northtel", secret_hash="hash", created=1)


def test_a_key_revoked_through_another_connection_is_revoked_for_the_next_request(store):
    store.add_key(KEY)
    assert a_request(store, lambda: store.get_key(KEY.key_id)).revoked is None
    in_a_thread(lambda: store.revoke_key(KEY.key_id, 5))
    assert a_request(store, lambda: store.get_key(KEY.key_id)).revoked == 5


def test_a_key_revoked_by_another_process_is_revoked_for_the_next_request(store, store_url):
    require_shared_store(store_url)
    store.add_key(KEY)
    assert a_request(store, lambda: store.get_key(KEY.key_id)).revoked is None
    script = "import sys; from taxii_server.storage import open_store; open_store(sys.argv[1]).revoke_key(sys.argv[2], 5)"
    subprocess.run([sys.executable, "-c", script, store_url, KEY.key_id], check=True)
    assert a_request(store, lambda: store.get_key(KEY.key_id)).revoked == 5


def test_a_key_added_after_an_unknown_id_was_tried_is_found(store):
    assert a_request(store, lambda: store.get_key(KEY.key_id)) is None
    in_a_thread(lambda: store.add_key(KEY))
    assert a_request(store, lambda: store.get_key(KEY.key_id)) == KEY


def test_an_object_added_during_a_request_is_in_the_next_requests_page(store):
    add(store, 1)
    assert a_request(store, lambda: len(first_page(store).records)) == 1
    in_a_thread(lambda: add(store, 2))
    assert a_request(store, lambda: len(first_page(store).records)) == 2


# -- the SQLite backend's cache itself ---------------------------------------------------------------------

@pytest.fixture
def sqlite_store(tmp_path):
    opened = open_store(f"sqlite:///{tmp_path / 'taxii.sqlite3'}")
    yield opened
    opened.close()


def statements_of(store, work) -> list[str]:
    """The SQL statements `work` runs on this thread's connection to `store`."""
    seen: list[str] = []
    connection = store._connection()
    connection.set_trace_callback(seen.append)
    try:
        work()
    finally:
        connection.set_trace_callback(None)
    return seen


def test_a_repeated_page_is_answered_without_reading_the_rows_again(sqlite_store):
    add(sqlite_store, 1, 2, 3)
    first = statements_of(sqlite_store, lambda: first_page(sqlite_store))
    again = statements_of(sqlite_store, lambda: first_page(sqlite_store))
    assert any("FROM objects" in sql for sql in first)
    assert again == ["PRAGMA data_version"]


def test_a_request_that_repeats_the_last_ones_reads_asks_the_store_only_whether_it_changed(sqlite_store):
    add(sqlite_store, 1, 2, 3)
    sqlite_store.add_key(KEY)

    def poll():
        sqlite_store.get_key(KEY.key_id)
        first_page(sqlite_store)

    first = statements_of(sqlite_store, lambda: a_request(sqlite_store, poll))
    again = statements_of(sqlite_store, lambda: a_request(sqlite_store, poll))
    assert any("FROM api_keys" in sql for sql in first) and any("FROM objects" in sql for sql in first)
    assert again == ["PRAGMA data_version"]


def test_an_unknown_key_id_is_looked_up_every_time(sqlite_store):
    statements = statements_of(sqlite_store, lambda: [a_request(sqlite_store, lambda: sqlite_store.get_key("nope"))
                                                      for _ in range(3)])
    assert sum("FROM api_keys" in sql for sql in statements) == 3


def test_any_commit_to_the_store_empties_the_cache_even_one_that_touches_no_object(sqlite_store):
    add(sqlite_store, 1)
    first_page(sqlite_store)
    in_a_thread(lambda: sqlite_store.add_key(KEY))  # a commit to another table
    again = statements_of(sqlite_store, lambda: first_page(sqlite_store))
    assert any("FROM objects" in sql for sql in again)


def record(n: int, body_size: int) -> StoredVersion:
    return StoredVersion(f"indicator--{uuid.UUID(int=n)}", "indicator", "v", "2.1", n, b"x" * body_size)


def cache_query(n: int) -> ObjectQuery:
    return ObjectQuery(collection_id=COLLECTION, limit=100, added_after=n)


def test_a_page_larger_than_the_limit_for_one_page_is_not_kept():
    cache, state = PageCache(), (1, 0)
    cache.put(state, cache_query(1), Page([record(1, MAX_PAGE_BYTES + 1)], more=False))
    assert cache.get(state, cache_query(1)) is None


def test_the_least_recently_read_page_goes_first_when_the_cache_is_full():
    cache, state = PageCache(), (1, 0)
    for n in range(MAX_PAGES):
        cache.put(state, cache_query(n), Page([record(n, 10)], more=False))
    assert cache.get(state, cache_query(0)) is not None  # read again: now the most recent
    cache.put(state, cache_query(MAX_PAGES), Page([record(MAX_PAGES, 10)], more=False))
    assert cache.get(state, cache_query(1)) is None
    assert cache.get(state, cache_query(0)) is not None


def test_the_bodies_kept_never_pass_the_byte_limit():
    cache, state = PageCache(), (1, 0)
    per_page = MAX_PAGE_BYTES
    for n in range(MAX_BYTES // per_page + 2):
        cache.put(state, cache_query(n), Page([record(n, per_page)], more=False))
    kept = [n for n in range(MAX_BYTES // per_page + 2) if cache.get(state, cache_query(n)) is not None]
    assert 0 < len(kept) * per_page <= MAX_BYTES


def test_a_page_kept_for_one_state_of_the_store_is_not_given_for_another():
    cache = PageCache()
    cache.put((1, 0), cache_query(1), Page([record(1, 10)], more=False))
    assert cache.get((2, 0), cache_query(1)) is None
    assert cache.get((1, 0), cache_query(1)) is None  # emptied when the state moved on
