"""Expired statuses are purged after writes, as housekeeping: a busy store delays
the purge, and never changes the answer to the write that came before it."""

from __future__ import annotations

import sqlite3

from taxii_server import retention
from taxii_server.storage.sqlite import SQLiteStore


def test_a_purge_that_finds_the_store_busy_is_put_off_not_raised(tmp_path):
    path = tmp_path / "taxii.sqlite3"
    store = SQLiteStore(path, write_wait=0.05)
    store.save_status("expired-status", "northtel", created=1, body=b"{}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the store's write lock
    try:
        assert retention.purge_expired_statuses(store, retention_seconds=60) == 0
    finally:
        holder.execute("ROLLBACK")
    assert store.load_status("expired-status") is not None


def test_the_purge_put_off_is_tried_again_by_the_next_request(tmp_path):
    path = tmp_path / "taxii.sqlite3"
    store = SQLiteStore(path, write_wait=0.05)
    store.save_status("expired-status", "northtel", created=1, body=b"{}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    retention.purge_expired_statuses(store, retention_seconds=60)
    holder.execute("ROLLBACK")
    assert retention.purge_expired_statuses(store, retention_seconds=60) == 1  # not held back a minute
    assert store.load_status("expired-status") is None
