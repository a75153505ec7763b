"""What the store keeps for the sharing rules, on every backend: the submitter of each
version, ownership decided inside the write, and both carried by `migrate`; and a
SQLite store made before submitters were recorded still opens and serves."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from backends import BACKENDS
from test_migrate import fresh_url, opened  # noqa: F401 (fixtures)
from test_storage_contract import backend, backend_url, collection, version  # noqa: F401 (fixtures)
from taxii_server.migrate import copy_store
from taxii_server.storage.base import Submission
from taxii_server.storage.planning import NOT_OWNER_MESSAGE
from taxii_server.storage.sqlite import SQLiteStore

NORTHTEL = Submission("northtel", "k-north")
SOUTHWAVE = Submission("southwave", "k-south")


def test_each_stored_version_records_its_submitter_and_key(backend, collection):
    backend.add_versions(collection, [version(1, on=1)], submitted_by=NORTHTEL)
    backend.add_versions(collection, [version(1, on=2)], submitted_by=Submission("northtel", "k-rotated", "c/x/v"))
    records = backend.object_versions(collection, version(1).object_id)
    assert [(r.submitter, r.submitter_key, r.derived_from) for r in records] == \
        [("northtel", "k-north", None), ("northtel", "k-rotated", "c/x/v")]


def test_only_the_first_writer_adds_versions(backend, collection):
    backend.add_versions(collection, [version(1, on=1)], submitted_by=NORTHTEL)
    (refused,) = backend.add_versions(collection, [version(1, on=2)], submitted_by=SOUTHWAVE)
    assert refused.conflict == NOT_OWNER_MESSAGE and not refused.stored
    assert len(backend.object_versions(collection, version(1).object_id)) == 1


def test_ownership_is_decided_within_one_call_too(backend, collection):
    outcomes = backend.add_versions(collection, [version(1, on=1), version(2, on=1)], submitted_by=NORTHTEL)
    assert all(o.stored for o in outcomes)
    outcomes = backend.add_versions(collection, [version(3, on=1), version(1, on=2)], submitted_by=SOUTHWAVE)
    assert [o.stored for o in outcomes] == [True, False]


def test_two_operators_racing_to_be_first_cannot_both_win(backend, collection):
    outcomes = {}

    def post(submission, day):
        outcomes[submission.operator_id] = backend.add_versions(collection, [version(9, on=day)],
                                                                submitted_by=submission)[0]

    racers = [threading.Thread(target=post, args=(NORTHTEL, 1)), threading.Thread(target=post, args=(SOUTHWAVE, 2))]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(o.stored for o in outcomes.values()) == [False, True]
    (record,) = backend.object_versions(collection, version(9).object_id)
    assert outcomes[record.submitter].stored


@pytest.mark.parametrize("source, destination", [(s, d) for s in sorted(BACKENDS) for d in sorted(BACKENDS)])
def test_migrate_carries_submitters_and_ownership(fresh_url, opened, source, destination, collection):
    origin = opened(fresh_url(source, "source"))
    origin.add_versions(collection, [version(1, on=1)], submitted_by=Submission("northtel", "k", "c/o/v"))
    copy = opened(fresh_url(destination, "destination"))
    copy_store(origin, copy)
    (record,) = copy.object_versions(collection, version(1).object_id)
    assert (record.submitter, record.submitter_key, record.derived_from) == ("northtel", "k", "c/o/v")
    (refused,) = copy.add_versions(collection, [version(1, on=2)], submitted_by=SOUTHWAVE)
    assert refused.conflict == NOT_OWNER_MESSAGE


OLD_OBJECTS_TABLE = """
CREATE TABLE objects (
    pk INTEGER PRIMARY KEY, collection_id TEXT NOT NULL, object_id TEXT NOT NULL, type TEXT NOT NULL,
    version TEXT NOT NULL, version_key INTEGER NOT NULL, spec_version TEXT NOT NULL, date_added INTEGER NOT NULL,
    is_first INTEGER NOT NULL, is_last INTEGER NOT NULL, content_hash BLOB NOT NULL, body BLOB NOT NULL)
"""


def test_a_store_made_before_submitters_were_recorded_opens_and_its_objects_get_an_owner(tmp_path, collection):
    path = tmp_path / "old.sqlite3"
    old = version(1, on=1)
    with sqlite3.connect(path) as db:
        db.execute(OLD_OBJECTS_TABLE)
        db.execute("INSERT INTO objects VALUES (1, ?, ?, ?, ?, ?, ?, 5, 1, 1, ?, ?)",
                   (collection, old.object_id, old.type, old.version, old.version_key, old.spec_version,
                    old.content_hash, old.body))
    store = SQLiteStore(path)
    (record,) = store.object_versions(collection, old.object_id)
    assert record.submitter is None and record.body == old.body
    # Nobody is recorded: the first version stored with a submitter makes its operator the owner.
    assert store.add_versions(collection, [version(1, on=2)], submitted_by=NORTHTEL)[0].stored
    assert store.add_versions(collection, [version(1, on=3)], submitted_by=SOUTHWAVE)[0].conflict == NOT_OWNER_MESSAGE
    SQLiteStore(path)  # opening it again changes nothing
