"""The MongoDB backend, for several server processes on several hosts sharing
one replica set (or sharded cluster).

Ordering. Each collection has a clock document. Every write to a collection
runs in one transaction whose first step modifies that document. Two open
transactions cannot both modify one document: the later one meets a write
conflict and is aborted, and the driver retries it, by which time it sees the
first one's commit. Writes to one collection therefore commit one after
another, each starting from the clock its predecessor left, so a version
committed later always has a later `date_added`, whatever the hosts' clocks
say. Any snapshot that shows a version shows every version with an earlier
`date_added` too, and a poller using `added_after` cannot miss one.

Consistency. Objects, statuses, keys and the audit trail are written with
write concern `majority` and read with read concern `majority`: a success
reported to a client survives a failover, and a poller never sees a version
that a failover could still roll back (were it rolled back, the next version
could be given the same `date_added` and the poller would skip it).
Rate-limit state, counted audit rows and key last-use times take `w: 1`: losing
one in a failover costs at most a second of bookkeeping, and they are written
often.

Indexes (created at start-up, idempotently) and the queries they serve:

    objects.by_date        (collection_id, date_added), unique
        objects/manifest pages with match[version]=all, exact versions, or first+last
    objects.last_by_date   (collection_id, is_last, date_added)
        objects/manifest pages with the default match[version]=last
    objects.first_by_date  (collection_id, is_first, date_added)
        pages with match[version]=first
    objects.by_id          (collection_id, object_id, version_key), unique
        the object and versions endpoints, match[id], the duplicate and owner checks on
        write, and an object's provenance (object_versions)
    api_keys.by_operator, client_certs.by_operator    listing per operator
    rate_state.by_time (tat)                          forgetting buckets worth nothing
    audit_log.by_time, audit_log.by_operator          `taxii-server audit`
    audit_counts.by_row (minute, client, operator_id, key_id, status), unique
                                                      one counted row per minute and caller
    audit_counts.by_time (at)                         `taxii-server audit`
    portal_sessions.by_key (key_id, last_seen)         a key's last portal visit

Every page is one `find` on one of these, bounded by `date_added > cursor`,
sorted by `date_added` and limited: no `$skip`, no aggregation, and no paging
state anywhere but in the client's `next` token.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import pymongo
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import (BulkWriteError, CollectionInvalid, ConnectionFailure, DuplicateKeyError, ExecutionTimeout,
                            PyMongoError)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ..timestamps import now_micros
from . import StorageError, redacted
from .base import (Acknowledgement, AddOutcome, ApiKeyRecord, AuditEvent, AuditMaker, ClientCertRecord, DeliveredPage,
                   Delivery, DeliveryCount, FalsePositive, FeedEntry, FeedIndicator, FeedState, NewVersion,
                   ObjectQuery, Page, Poll, PortalSession, SightingRecord, StatusMaker, StatusRecord, Store,
                   StoreBusy, StoredVersion, Submission, VersionFilter, VersionRecord, newest_sent, take_page)
from .planning import HeldVersion, WritePlan, plan_additions, plan_import

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_DATABASE = "taxii"
DURABLE = WriteConcern("majority")
COMMITTED = ReadConcern("majority")
CHEAP = WriteConcern(w=1)

COLLECTIONS = ("objects", "collection_clocks", "statuses", "api_keys", "client_certs", "rate_state", "audit_log",
               "audit_counts", "feed_state", "feed_indicators", "feed_entries", "removals", "portal_sessions")
INDEXES: dict[str, list[tuple[str, list[tuple[str, int]], dict]]] = {
    "objects": [
        ("by_date", [("collection_id", ASCENDING), ("date_added", ASCENDING)], {"unique": True}),
        ("last_by_date", [("collection_id", ASCENDING), ("is_last", ASCENDING), ("date_added", ASCENDING)], {}),
        ("first_by_date", [("collection_id", ASCENDING), ("is_first", ASCENDING), ("date_added", ASCENDING)], {}),
        ("by_id", [("collection_id", ASCENDING), ("object_id", ASCENDING), ("version_key", ASCENDING)],
         {"unique": True}),
    ],
    "statuses": [("by_created", [("created", ASCENDING)], {})],
    "api_keys": [("by_operator", [("operator_id", ASCENDING), ("created", ASCENDING)], {})],
    "client_certs": [("by_operator", [("operator_id", ASCENDING), ("created", ASCENDING)], {})],
    "rate_state": [("by_time", [("tat", ASCENDING)], {})],
    "portal_sessions": [("by_key", [("key_id", ASCENDING), ("last_seen", ASCENDING)], {})],
    "audit_log": [
        ("by_time", [("at", ASCENDING), ("_id", ASCENDING)], {}),
        ("by_operator", [("operator_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)], {}),
    ],
    "audit_counts": [
        ("by_row", [(name, ASCENDING) for name in ("minute", "client", "operator_id", "key_id", "status")],
         {"unique": True}),
        ("by_time", [("at", ASCENDING), ("_id", ASCENDING)], {}),
    ],
    # Feeds (taxii_server/feeds): see the "feeds" section of MongoStore.
    "removals": [("by_collection", [("collection_id", ASCENDING), ("seq", ASCENDING)], {"unique": True})],
    "feed_indicators": [
        ("by_indicator", [("collection_id", ASCENDING), ("indicator_id", ASCENDING)], {"unique": True}),
        ("left_out", [("collection_id", ASCENDING), ("left_out", ASCENDING), ("valid_until", ASCENDING)], {}),
    ],
    "feed_entries": [
        ("ranked", [("collection_id", ASCENDING), ("kind", ASCENDING), ("held", ASCENDING),
                    ("confidence", DESCENDING), ("date_added", DESCENDING)], {}),
        ("until", [("collection_id", ASCENDING), ("kind", ASCENDING), ("valid_until", ASCENDING)], {}),
        ("from", [("collection_id", ASCENDING), ("kind", ASCENDING), ("valid_from", ASCENDING)], {}),
        ("by_indicator", [("collection_id", ASCENDING), ("indicator_id", ASCENDING)], {}),
        ("expiry", [("collection_id", ASCENDING), ("valid_until", ASCENDING)], {}),
    ],
}

# Compliance records (taxii_server/compliance): their collections, with the index
# that keys each one; the time indexes serve `--since` and the retention purge.
_DELIVERY_KEY = ("operator_id", "collection_id", "date_added")
COMPLIANCE_INDEXES: dict[str, list[tuple[str, list[tuple[str, int]], dict]]] = {
    "compliance_deliveries": [("by_key", [(name, ASCENDING) for name in _DELIVERY_KEY], {"unique": True})],
    "compliance_polls": [("by_key", [("operator_id", ASCENDING), ("collection_id", ASCENDING)], {"unique": True})],
    "compliance_acks": [("by_key", [("operator_id", ASCENDING), ("object_id", ASCENDING), ("ack_id", ASCENDING)],
                         {"unique": True}),
                        ("by_time", [("acked_at", ASCENDING)], {})],
    "compliance_sightings": [("by_key", [("operator_id", ASCENDING), ("sighting_id", ASCENDING)], {"unique": True})],
    "compliance_false_positives": [("by_key", [("operator_id", ASCENDING), ("opinion_id", ASCENDING),
                                               ("indicator_id", ASCENDING)], {"unique": True})],
    "compliance_cursors": [],
    "compliance_delivered_pages": [],
}
COLLECTIONS += tuple(COMPLIANCE_INDEXES)
INDEXES.update(COMPLIANCE_INDEXES)

# Only for servers that cannot run transactions (mongomock, in the test suite):
# writes are then serialised within this one process instead, and pages are read
# between writes, so that a write is seen whole, as a committed transaction is.
_UNTRANSACTED_WRITES = threading.RLock()


@dataclass(frozen=True)
class _Handles:
    """One process's client, and its database as seen with each write concern."""

    client: Any
    durable: Database
    cheap: Database


class MongoStore(Store):
    """`connect` is how a deployment opens one; the constructor takes any
    pymongo-compatible client factory so that tests can hand it mongomock."""

    def __init__(self, make_client: Callable[[], Any], database_name: str, transactions: bool = True):
        self._make_client, self._database_name, self._transactions = make_client, database_name, transactions
        self._client_lock = threading.Lock()
        self._by_process: dict[int, _Handles] = {}
        if transactions:
            self.require_transactions()
        self.create_indexes()

    @classmethod
    def connect(cls, url: str) -> MongoStore:
        """Open the store at `url`, or raise StorageError saying why not."""
        database = urlsplit(url).path.lstrip("/") or DEFAULT_DATABASE
        try:
            return cls(lambda: MongoClient(url, appname="taxii-server"), database)
        except PyMongoError as exc:
            raise StorageError(f"cannot use MongoDB at {redacted(url)}: {exc}") from None

    # -- connections -----------------------------------------------------------
    def _handles(self) -> _Handles:
        # pymongo clients must not cross a fork: gunicorn workers each open their own.
        pid = os.getpid()
        with self._client_lock:
            handles = self._by_process.get(pid)
            if handles is None:
                client = self._make_client()
                handles = self._by_process[pid] = _Handles(client, self._database(client, DURABLE),
                                                           self._database(client, CHEAP))
        return handles

    def _database(self, client, write_concern: WriteConcern) -> Database:
        """The database with the consistency settings of the module docstring."""
        return client.get_database(self._database_name, write_concern=write_concern, read_concern=COMMITTED)

    def _client(self):
        return self._handles().client

    def _db(self, cheap: bool = False) -> Database:
        """The database for data that must survive a failover, or (`cheap`) for counters that need not."""
        handles = self._handles()
        return handles.cheap if cheap else handles.durable

    def require_transactions(self) -> None:
        hello = self._client().admin.command("hello")
        if not (hello.get("setName") or hello.get("msg") == "isdbgrid"):
            raise StorageError("MongoDB storage needs a replica set or a sharded cluster, for transactions: "
                               "a one-member replica set will do (mongod --replSet rs0, then rs.initiate())")

    def create_indexes(self) -> None:
        """Create every collection and index the store uses; those already there are left as they are."""
        db = self._db()
        # Made here, not implicitly by a first write: a sharded cluster cannot create one inside a transaction.
        for name in set(COLLECTIONS) - set(db.list_collection_names()):
            try:
                db.create_collection(name)
            except CollectionInvalid:  # another process made it a moment ago
                pass
        for collection, indexes in INDEXES.items():
            for name, keys, options in indexes:
                db[collection].create_index(keys, name=name, **options)

    def _atomically(self, work: Callable[[Any], T]) -> T:
        """Run `work(session)` as one transaction, retried by the driver on write conflicts."""
        if not self._transactions:
            with _UNTRANSACTED_WRITES:
                return work(None)
        try:
            with self._client().start_session() as session:
                return session.with_transaction(work, read_concern=ReadConcern("snapshot"), write_concern=DURABLE)
        except (ConnectionFailure, ExecutionTimeout) as exc:  # no primary for now, or the write waited too long
            raise StoreBusy(str(exc)) from None
        except PyMongoError as exc:
            if exc.has_error_label("TransientTransactionError"):  # conflicts outlasted the driver's retries
                raise StoreBusy(str(exc)) from None
            raise

    def close(self) -> None:
        with self._client_lock:
            handles = self._by_process.pop(os.getpid(), None)
        if handles is not None:
            handles.client.close()

    # -- operations ------------------------------------------------------------
    def ready(self, deadline: float) -> bool:
        try:
            with pymongo.timeout(deadline):  # bounds server selection and every round trip below
                if self._transactions and not self._has_primary():
                    log.warning("the store is not ready: the replica set has no primary")
                    return False
                self._db().collection_clocks.find_one({}, {"_id": 1})
        except PyMongoError as exc:
            log.warning("the store is not ready: %s", exc)
            return False
        return True

    def _has_primary(self) -> bool:
        # Commands go to the primary: with none, selecting a server times out (PyMongoError).
        hello = self._client().admin.command("hello")
        return bool(hello.get("isWritablePrimary") or hello.get("msg") == "isdbgrid")

    def size_bytes(self) -> int | None:
        if not self._transactions:  # mongomock, in the test suite, has no dbStats
            return None
        try:
            stats = self._db().command("dbStats")
        except PyMongoError as exc:  # e.g. a role without the dbStats action (docs/operations.md)
            log.debug("no store size: %s", exc)
            return None
        return int(stats.get("storageSize", 0) + stats.get("indexSize", 0))

    # -- objects -----------------------------------------------------------------
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None, audit_for: AuditMaker | None = None,
                     submitted_by: Submission | None = None) -> list[AddOutcome]:
        if not versions and status_for is None and audit_for is None:
            return []

        def work(session) -> list[AddOutcome]:
            db = self._db()
            clock = self._take_clock(db, collection_id, session) if versions else 0
            held = self._held_versions(db, collection_id, {new.object_id for new in versions}, session)
            plan = plan_additions(versions, held, clock, now_micros, submitted_by)
            status = status_for(plan.outcomes) if status_for is not None else None
            event = audit_for(plan.outcomes) if audit_for is not None else None
            self._write_plan(db, collection_id, plan, session)
            if status is not None:
                db.statuses.insert_one(_status_document(status), session=session)
            if event is not None:
                db.audit_log.insert_one(_audit_document(event), session=session)
            return plan.outcomes

        return self._atomically(work)

    @staticmethod
    def _take_clock(db: Database, collection_id: str, session) -> int:
        """Read the collection's clock and claim it for this transaction: the
        increment is a write, so a concurrent writer to this collection conflicts."""
        clock = db.collection_clocks.find_one_and_update(
            {"_id": collection_id}, {"$inc": {"writes": 1}}, upsert=True,
            return_document=ReturnDocument.AFTER, session=session)
        return clock.get("last_date_added", 0)

    @staticmethod
    def _held_versions(db: Database, collection_id: str, object_ids: set[str], session) -> dict[str, list[HeldVersion]]:
        held: dict[str, list[HeldVersion]] = {}
        if not object_ids:
            return held
        found = db.objects.find(
            {"collection_id": collection_id, "object_id": {"$in": sorted(object_ids)}},
            {"_id": 0, "object_id": 1, "version_key": 1, "content_hash": 1, "version": 1, "date_added": 1,
             "submitter": 1},
            session=session).hint("by_id")
        for doc in found:
            held.setdefault(doc["object_id"], []).append(
                HeldVersion(doc["version_key"], bytes(doc["content_hash"]), doc["version"], doc["date_added"],
                            doc.get("submitter")))
        return held

    @staticmethod
    def _write_plan(db: Database, collection_id: str, plan: WritePlan, session) -> None:
        for flag, object_ids in (("is_first", plan.demote_first), ("is_last", plan.demote_last)):
            if object_ids:
                db.objects.update_many({"collection_id": collection_id, "object_id": {"$in": object_ids}, flag: True},
                                       {"$set": {flag: False}}, session=session)
        if not plan.rows:
            return
        db.objects.insert_many([_object_document(collection_id, row.record, row.is_first, row.is_last)
                                for row in plan.rows], session=session)
        # The clock document exists: `_take_clock` made it, earlier in this same write.
        db.collection_clocks.update_one({"_id": collection_id}, {"$max": {"last_date_added": plan.clock}},
                                        session=session)

    def query(self, query: ObjectQuery) -> Page:
        with _UNTRANSACTED_WRITES if not self._transactions else nullcontext():
            return take_page((_stored_version(doc) for doc in self.page_cursor(query)), query)

    def page_cursor(self, query: ObjectQuery):
        """The one `find` that reads a page (one record more than the limit, to tell
        whether more follow); `explain()` on it shows the index that serves it."""
        projection = {"_id": 0, "object_id": 1, "type": 1, "version": 1, "spec_version": 1, "date_added": 1}
        if query.with_body:
            projection["body"] = 1
        return (self._db().objects.find(_object_filter(query), projection)
                .hint(_index_for(query)).sort("date_added", ASCENDING).limit(query.limit + 1))

    def object_versions(self, collection_id: str, object_id: str) -> list[VersionRecord]:
        found = (self._db().objects.find({"collection_id": collection_id, "object_id": object_id})
                 .hint("by_id").sort("version_key", ASCENDING))
        return [_version_record(doc) for doc in found]
    def recent_versions(self, collection_id: str, limit: int, before: int | None = None,
                        since: int | None = None, with_body: bool = True) -> list[StoredVersion]:
        added: dict[str, int] = {}
        if before is not None:
            added["$lt"] = before
        if since is not None:
            added["$gt"] = since
        match: dict[str, Any] = {"collection_id": collection_id, "is_last": True}
        if added:
            match["date_added"] = added
        projection = {"_id": 0, "object_id": 1, "type": 1, "version": 1, "spec_version": 1, "date_added": 1}
        if with_body:
            projection["body"] = 1
        found = (self._db().objects.find(match, projection).hint("last_by_date")
                 .sort("date_added", DESCENDING).limit(limit))
        return [_stored_version(doc) for doc in found]

    def last_added(self, collection_ids: list[str]) -> dict[str, int]:
        clocks = self._db().collection_clocks.find(
            {"_id": {"$in": list(collection_ids)}, "last_date_added": {"$exists": True}}, {"last_date_added": 1})
        return {doc["_id"]: doc["last_date_added"] for doc in clocks}

    def object_exists(self, collection_id: str, object_id: str) -> bool:
        found = self._db().objects.find({"collection_id": collection_id, "object_id": object_id},
                                        {"_id": 1}).hint("by_id").limit(1)
        return any(True for _ in found)

    def delete_versions(self, collection_id: str, object_id: str,
                        versions: VersionFilter, spec_versions: tuple[str, ...],
                        audit_for: Callable[[int], AuditEvent] | None = None) -> int:
        match = _object_filter(ObjectQuery(collection_id=collection_id, limit=0, object_id=object_id,
                                           versions=versions, spec_versions=spec_versions))

        def work(session) -> int:
            db = self._db()
            self._take_clock(db, collection_id, session)  # one writer per collection, so flags stay consistent
            deleted = db.objects.delete_many(match, session=session).deleted_count
            if deleted:
                self._refresh_first_and_last(db, collection_id, object_id, session)
                if audit_for is not None:
                    db.audit_log.insert_one(_audit_document(audit_for(deleted)), session=session)
                _note_removal(db, collection_id, object_id, session)
            return deleted

        return self._atomically(work)

    @staticmethod
    def _refresh_first_and_last(db: Database, collection_id: str, object_id: str, session) -> None:
        one_object = {"collection_id": collection_id, "object_id": object_id}
        keys = [doc["version_key"] for doc in db.objects.find(one_object, {"_id": 0, "version_key": 1},
                                                               session=session).hint("by_id")]
        if not keys:
            return
        db.objects.update_many(one_object, {"$set": {"is_first": False, "is_last": False}}, session=session)
        db.objects.update_one({**one_object, "version_key": min(keys)}, {"$set": {"is_first": True}}, session=session)
        db.objects.update_one({**one_object, "version_key": max(keys)}, {"$set": {"is_last": True}}, session=session)

    def count_versions(self, collection_id: str) -> int:
        return self._db().objects.count_documents({"collection_id": collection_id})

    # -- statuses ----------------------------------------------------------------
    def save_status(self, status_id: str, owner: str, created: int, body: bytes) -> None:
        self._db().statuses.insert_one(_status_document(StatusRecord(status_id, owner, created, body)))

    def load_status(self, status_id: str) -> tuple[str, bytes] | None:
        doc = self._db().statuses.find_one({"_id": status_id})
        return (doc["owner"], bytes(doc["body"])) if doc else None

    def purge_statuses(self, created_before: int) -> int:
        return self._db().statuses.delete_many({"created": {"$lt": created_before}}).deleted_count

    # -- keys --------------------------------------------------------------------
    def add_key(self, record: ApiKeyRecord) -> None:
        self._db().api_keys.insert_one(_key_document(record))

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        doc = self._db().api_keys.find_one({"_id": key_id})
        return _key_record(doc) if doc else None

    def list_keys(self, operator_id: str | None = None) -> list[ApiKeyRecord]:
        return [_key_record(doc) for doc in _by_operator(self._db().api_keys, operator_id)]

    def revoke_key(self, key_id: str, at: int) -> bool:
        return _set_once(self._db().api_keys, key_id, "revoked", at)

    def set_key_expiry(self, key_id: str, expires: int | None) -> bool:
        return self._db().api_keys.update_one({"_id": key_id}, {"$set": {"expires": expires}}).matched_count == 1

    def touch_key(self, key_id: str, at: int) -> None:
        self._db(cheap=True).api_keys.update_one({"_id": key_id}, {"$set": {"last_used": at}})

    # -- client certificates -----------------------------------------------------
    def add_client_cert(self, record: ClientCertRecord) -> bool:
        try:
            self._db().client_certs.insert_one(_cert_document(record))
        except DuplicateKeyError:
            return False
        return True

    def find_client_cert(self, fingerprint: str) -> ClientCertRecord | None:
        doc = self._db().client_certs.find_one({"_id": fingerprint})
        return _cert_record(doc) if doc else None

    def list_client_certs(self, operator_id: str | None = None) -> list[ClientCertRecord]:
        return [_cert_record(doc) for doc in _by_operator(self._db().client_certs, operator_id)]

    def revoke_client_cert(self, fingerprint: str, at: int) -> bool:
        return _set_once(self._db().client_certs, fingerprint, "revoked", at)

    # -- portal sessions -----------------------------------------------------------
    def add_portal_session(self, session: PortalSession) -> None:
        fields = dict(vars(session))
        self._db().portal_sessions.insert_one({"_id": fields.pop("token_hash"), **fields})

    def get_portal_session(self, token_hash: str) -> PortalSession | None:
        doc = self._db().portal_sessions.find_one({"_id": token_hash})
        if doc is None:
            return None
        fields = dict(doc)
        return PortalSession(token_hash=fields.pop("_id"), **fields)

    def touch_portal_session(self, token_hash: str, at: int) -> None:
        self._db(cheap=True).portal_sessions.update_one({"_id": token_hash}, {"$max": {"last_seen": at}})

    def end_portal_session(self, token_hash: str, at: int) -> None:
        _set_once(self._db().portal_sessions, token_hash, "ended", at)

    def last_portal_visit(self, key_id: str) -> int | None:
        latest = (self._db().portal_sessions.find({"key_id": key_id}, {"_id": 0, "last_seen": 1}).hint("by_key")
                  .sort("last_seen", DESCENDING).limit(1))
        return next((doc["last_seen"] for doc in latest), None)

    # -- rate limits ---------------------------------------------------------------
    def spend_rate(self, spends: dict[str, tuple[int, int]], now: int) -> dict[str, int]:
        state = self._db(cheap=True).rate_state
        if not any(cost for _, cost in spends.values()):  # only reading
            held = {doc["_id"]: doc["tat"] for doc in state.find({"_id": {"$in": list(spends)}})}
            return {bucket: max(held.get(bucket, 0), since) for bucket, (since, _) in spends.items()}
        times = {bucket: _spend_one(state, bucket, since, cost) for bucket, (since, cost) in spends.items()}
        state.delete_many({"tat": {"$lt": now}})  # spent long enough ago to be worth nothing
        return times

    # -- audit trail -------------------------------------------------------------
    def record_audit(self, event: AuditEvent) -> None:
        self.record_audit_batch([event])

    def record_audit_batch(self, events: list[AuditEvent]) -> None:
        if events:
            self._db().audit_log.insert_many([_audit_document(event) for event in events], ordered=True)

    def record_audit_counts(self, events: list[AuditEvent]) -> None:
        counts = self._db(cheap=True).audit_counts
        for event in events:
            row = {"minute": event.at // MINUTE, "client": event.client, "operator_id": event.operator_id or "",
                   "key_id": event.key_id or "", "status": event.status}
            first = {"at": event.at, "method": event.method, "path": event.path,
                     "collection_id": event.collection_id, "objects": event.objects}
            try:
                _count_row(counts, row, first, event.count)
            except DuplicateKeyError:  # two processes created the row at once; it exists now
                _count_row(counts, row, first, event.count)

    def query_audit_log(self, operator_id: str | None, since: int | None, failures_only: bool,
                        limit: int) -> tuple[list[AuditEvent], int]:
        match = _audit_match(operator_id, since, failures_only, anonymous=None)
        log = self._db().audit_log
        found = log.find(match, {"_id": 0}).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [AuditEvent(**doc) for doc in found], log.count_documents(match)

    def query_audit_counts(self, operator_id: str | None, since: int | None, failures_only: bool,
                           limit: int) -> tuple[list[AuditEvent], int]:
        match = _audit_match(operator_id, since, failures_only, anonymous="")
        counts = self._db().audit_counts
        found = counts.find(match, {"_id": 0, "minute": 0}).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        events = [AuditEvent(**{**doc, "operator_id": doc["operator_id"] or None, "key_id": doc["key_id"] or None})
                  for doc in found]
        return events, counts.count_documents(match)

    # -- copying a whole store ---------------------------------------------------
    def collection_ids(self) -> list[str]:
        # A clock gets last_date_added with its first stored version; a write that stored nothing leaves none.
        clocks = self._db().collection_clocks.find({"last_date_added": {"$exists": True}}, {"_id": 1})
        return [doc["_id"] for doc in clocks.sort("_id", ASCENDING)]

    def export_versions(self, collection_id: str, after_position: int | None, limit: int) -> list[VersionRecord]:
        found = (self._db().objects.find({"collection_id": collection_id, "date_added": {"$gt": after_position or 0}})
                 .hint("by_date").sort("date_added", ASCENDING).limit(limit))
        return [_version_record(doc) for doc in found]

    def import_versions(self, collection_id: str, records: list[VersionRecord]) -> int:
        def work(session) -> int:
            db = self._db()
            clock = self._take_clock(db, collection_id, session)
            held = self._held_versions(db, collection_id, {record.object_id for record in records}, session)
            plan = plan_import(collection_id, records, held, clock)
            self._write_plan(db, collection_id, plan, session)
            return len(plan.rows)

        return self._atomically(work)

    def export_statuses(self, after_id: str | None, limit: int) -> list[StatusRecord]:
        found = self._db().statuses.find({"_id": {"$gt": after_id or ""}}).sort("_id", ASCENDING).limit(limit)
        return [StatusRecord(doc["_id"], doc["owner"], doc["created"], bytes(doc["body"])) for doc in found]

    def import_statuses(self, records: list[StatusRecord]) -> int:
        statuses = self._db().statuses
        return sum(statuses.update_one({"_id": r.id}, {"$setOnInsert": _status_document(r)}, upsert=True)
                   .upserted_id is not None for r in records)

    def put_key(self, record: ApiKeyRecord) -> None:
        self._db().api_keys.replace_one({"_id": record.key_id}, _key_document(record), upsert=True)

    def put_client_cert(self, record: ClientCertRecord) -> None:
        self._db().client_certs.replace_one({"_id": record.fingerprint}, _cert_document(record), upsert=True)

    # -- compliance records (taxii_server/compliance) ------------------------------------
    def record_deliveries(self, pages: list[DeliveredPage], polls: list[Poll]) -> None:
        db = self._db()
        if pages:
            db.compliance_delivered_pages.insert_many(
                [{"operator_id": page.operator_id, "collection_id": page.collection_id,
                  "delivered_at": page.delivered_at, "versions": orjson.dumps(page.versions)} for page in pages])
        for p in polls:
            _upsert(db.compliance_polls, {"operator_id": p.operator_id, "collection_id": p.collection_id},
                    {"$max": {"at": p.at}})

    def compact_deliveries(self, max_pages: int) -> int:
        db = self._db()
        pages = list(db.compliance_delivered_pages.find().sort("_id", ASCENDING).limit(max_pages))
        documents = [{"operator_id": page["operator_id"], "collection_id": page["collection_id"],
                      "date_added": date_added, "object_id": object_id, "version": version,
                      "delivered_at": page["delivered_at"], "acknowledged_at": None}
                     for page in pages for date_added, object_id, version in orjson.loads(page["versions"])]
        try:  # new deliveries in one round trip; those already held keep the earlier time
            if documents:
                db.compliance_deliveries.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != 11000:
                    raise
                held = documents[error["index"]]
                db.compliance_deliveries.update_one({name: held[name] for name in _DELIVERY_KEY},
                                                    {"$min": {"delivered_at": held["delivered_at"]}})
        # Deleted only now: a process that stops half-way leaves them for the next compaction.
        db.compliance_delivered_pages.delete_many({"_id": {"$in": [page["_id"] for page in pages]}})
        return len(pages)

    def deliveries(self, collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                   since: int | None, after: tuple[str, str, int] | None, limit: int) -> list[Delivery]:
        match = _delivery_match(collection_ids, operator_ids, since)
        if after is not None:
            match = {"$and": [match, _after_key(_DELIVERY_KEY, after)]}
        found = (self._db().compliance_deliveries.find(match, {"_id": 0})
                 .sort([(name, ASCENDING) for name in _DELIVERY_KEY]).limit(limit))
        return [Delivery(**doc) for doc in found]

    def delivery_counts(self, collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                        since: int | None, after: tuple[str, int] | None, limit: int) -> list[DeliveryCount]:
        key = ("collection_id", "date_added")
        pipeline: list[dict] = [
            {"$match": _delivery_match(collection_ids, operator_ids, since)},
            {"$group": {"_id": {name: f"${name}" for name in key}, "object_id": {"$min": "$object_id"},
                        "version": {"$min": "$version"}, "delivered": {"$sum": 1},
                        "acknowledged": {"$sum": {"$cond": [{"$gt": ["$acknowledged_at", None]}, 1, 0]}},
                        "first_delivered": {"$min": "$delivered_at"}}},
            {"$project": {**{name: f"$_id.{name}" for name in key}, "object_id": 1, "version": 1, "delivered": 1,
                          "acknowledged": 1, "first_delivered": 1, "_id": 0}},
        ]
        if after is not None:
            pipeline.append({"$match": _after_key(key, after)})
        pipeline += [{"$sort": {name: 1 for name in key}}, {"$limit": limit}]
        return [DeliveryCount(**doc) for doc in self._db().compliance_deliveries.aggregate(pipeline)]

    def has_delivery(self, operator_id: str, object_id: str, collection_ids: tuple[str, ...], before: int) -> bool:
        db = self._db()
        return any(db.compliance_deliveries.find_one(
            {"operator_id": operator_id, "collection_id": collection_id,
             "date_added": {"$in": self._versions_of(collection_id, object_id)}, "delivered_at": {"$lte": before}},
            {"_id": 1}) is not None for collection_id in collection_ids)

    def mark_acknowledged(self, operator_id: str, object_id: str, collection_ids: tuple[str, ...], at: int) -> int:
        db = self._db()
        return sum(db.compliance_deliveries.update_many(
            {"operator_id": operator_id, "collection_id": collection_id,
             "date_added": {"$in": self._versions_of(collection_id, object_id)}, "delivered_at": {"$lte": at},
             "$or": [{"acknowledged_at": None}, {"acknowledged_at": {"$gt": at}}]},
            {"$set": {"acknowledged_at": at}}).modified_count for collection_id in collection_ids)

    def _versions_of(self, collection_id: str, object_id: str) -> list[int]:
        """The date_added of every version of one object in one collection."""
        found = self._db().objects.find({"collection_id": collection_id, "object_id": object_id},
                                        {"_id": 0, "date_added": 1}).hint("by_id")
        return [doc["date_added"] for doc in found]

    def save_acknowledgement(self, ack: Acknowledgement) -> None:
        fields = dict(vars(ack))
        key = {name: fields.pop(name) for name in ("operator_id", "object_id", "ack_id")}
        acked_at = fields.pop("acked_at")
        _upsert(self._db().compliance_acks, key, {"$set": fields, "$min": {"acked_at": acked_at}})

    def acknowledgements(self, since: int | None = None, unsettled_only: bool = False) -> list[Acknowledgement]:
        match: dict[str, Any] = {"acked_at": {"$gte": since or 0}}
        if unsettled_only:
            match["settled"] = False
        found = self._db().compliance_acks.find(match, {"_id": 0}).sort("acked_at", ASCENDING)
        return [Acknowledgement(**doc) for doc in found]

    def save_sighting(self, record: SightingRecord) -> None:
        fields = dict(vars(record))
        key = {name: fields.pop(name) for name in ("operator_id", "sighting_id")}
        try:  # an upsert that finds only a later version tries to insert a second record, which the key refuses
            self._db().compliance_sightings.update_one({**key, "version_key": {"$lt": record.version_key}},
                                                       {"$set": fields}, upsert=True)
        except DuplicateKeyError:
            pass

    def sightings(self) -> list[SightingRecord]:
        return [SightingRecord(**doc) for doc in self._db().compliance_sightings.find({}, {"_id": 0})]

    def save_false_positive(self, record: FalsePositive) -> None:
        fields = dict(vars(record))
        key = {name: fields.pop(name) for name in ("operator_id", "opinion_id", "indicator_id")}
        _upsert(self._db().compliance_false_positives, key, {"$setOnInsert": fields})

    def false_positives(self) -> list[FalsePositive]:
        return [FalsePositive(**doc) for doc in self._db().compliance_false_positives.find({}, {"_id": 0})]

    def last_polls(self) -> list[Poll]:
        return [Poll(**doc) for doc in self._db().compliance_polls.find({}, {"_id": 0})]

    def undelivered(self, collection_id: str, operator_ids: tuple[str, ...],
                    added_since: int) -> dict[str, tuple[int, int | None]]:
        db = self._db()
        latest = [doc["date_added"] for doc in db.objects.find(
            {"collection_id": collection_id, "is_last": True, "date_added": {"$gte": added_since}},
            {"_id": 0, "date_added": 1}).hint("last_by_date").sort("date_added", ASCENDING)]
        result = {}
        for operator_id in operator_ids:
            delivered = {doc["date_added"] for doc in db.compliance_deliveries.find(
                {"operator_id": operator_id, "collection_id": collection_id, "date_added": {"$gte": added_since}},
                {"_id": 0, "date_added": 1})}
            missing = [date_added for date_added in latest if date_added not in delivered]
            result[operator_id] = len(missing), missing[0] if missing else None
        return result

    def oldest_after_last_delivered(self, collection_id: str, operator_ids: tuple[str, ...],
                                    added_since: int) -> dict[str, int]:
        if not operator_ids:
            return {}
        db = self._db()
        pending = newest_sent(((page["operator_id"], page["versions"]) for page in db.compliance_delivered_pages.find(
            {"collection_id": collection_id, "operator_id": {"$in": list(operator_ids)}},
            {"_id": 0, "operator_id": 1, "versions": 1})), operator_ids)
        oldest = {}
        for operator_id in operator_ids:
            delivered = db.compliance_deliveries.find_one(
                {"operator_id": operator_id, "collection_id": collection_id}, {"_id": 0, "date_added": 1},
                sort=[("date_added", DESCENDING)])
            frontier = max(delivered["date_added"] if delivered else 0, pending.get(operator_id, 0), added_since - 1)
            first = list(db.objects.find({"collection_id": collection_id, "is_last": True,
                                          "date_added": {"$gt": frontier}}, {"_id": 0, "date_added": 1})
                         .hint("last_by_date").sort("date_added", ASCENDING).limit(1))
            if first:
                oldest[operator_id] = first[0]["date_added"]
        return oldest

    def unacknowledged_versions(self, collection_ids: tuple[str, ...]) -> dict[str, int]:
        pipeline = [
            {"$match": {"collection_id": {"$in": list(collection_ids)}, "acknowledged_at": None}},
            {"$group": {"_id": "$operator_id", "versions": {"$sum": 1}}},
        ]
        return {doc["_id"]: doc["versions"] for doc in self._db().compliance_deliveries.aggregate(pipeline)}

    def compliance_cursor(self, collection_id: str) -> int:
        doc = self._db().compliance_cursors.find_one({"_id": collection_id})
        return doc["position"] if doc else 0

    def advance_compliance_cursor(self, collection_id: str, position: int) -> None:
        _upsert(self._db().compliance_cursors, {"_id": collection_id}, {"$max": {"position": position}})

    def purge_compliance(self, before: int) -> int:
        db = self._db()
        return sum(db[name].delete_many({field: {"$lt": before}}).deleted_count for name, field in (
            ("compliance_deliveries", "delivered_at"), ("compliance_delivered_pages", "delivered_at"),
            ("compliance_acks", "acked_at"),
            ("compliance_sightings", "received_at"), ("compliance_false_positives", "reported_at")))


    # -- feeds: plain lists for firewalls and resolvers (taxii_server/feeds) ----------
    # feed_state (one document per collection, _id = collection id), feed_indicators (the
    # latest version of each indicator read), feed_entries (one document per value). A feed
    # request reads feed_entries.ranked from its own (collection, kind) on: its cost follows
    # the feed, never the collection. Expiry is a filter on valid_from/valid_until, not a write.
    def feed_state(self, collection_id: str) -> FeedState | None:
        doc = self._db().feed_state.find_one({"_id": collection_id}, {"_id": 0})
        return FeedState(**doc) if doc else None

    def removals(self, collection_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        found = (self._db().removals.find({"collection_id": collection_id, "seq": {"$gt": after}})
                 .hint("by_collection").sort("seq", ASCENDING).limit(limit))
        return [(doc["seq"], doc["object_id"]) for doc in found]

    def feed_indicator_versions(self, collection_id: str, indicator_ids: list[str]) -> dict[str, int]:
        found = self._db().feed_indicators.find(
            {"collection_id": collection_id, "indicator_id": {"$in": indicator_ids}},
            {"_id": 0, "indicator_id": 1, "version_key": 1}).hint("by_indicator")
        return {doc["indicator_id"]: doc["version_key"] for doc in found}

    def apply_feed_changes(self, collection_id: str, expected: FeedState | None, state: FeedState,
                           indicators: list[FeedIndicator], start_over: bool = False,
                           purge_until: int | None = None) -> bool:
        def work(session) -> bool:
            db = self._db()
            if not _swap_feed_state(db, collection_id, expected, state, session):
                return False
            one_collection = {"collection_id": collection_id}
            if start_over:
                db.feed_entries.delete_many(one_collection, session=session)
                db.feed_indicators.delete_many(one_collection, session=session)
            elif indicators:
                replaced = [indicator.indicator_id for indicator in indicators]
                db.feed_entries.delete_many({**one_collection, "indicator_id": {"$in": replaced}}, session=session)
                db.feed_indicators.delete_many({**one_collection, "indicator_id": {"$in": replaced}}, session=session)
            if indicators:
                db.feed_indicators.insert_many([{**one_collection, "indicator_id": i.indicator_id,
                                                 "version_key": i.version_key, "valid_until": i.valid_until,
                                                 "left_out": i.left_out} for i in indicators], session=session)
            entries = [{**one_collection, **entry._asdict()} for indicator in indicators for entry in indicator.entries]
            if entries:
                db.feed_entries.insert_many(entries, session=session)
            if purge_until is not None:
                db.feed_entries.delete_many({**one_collection, "valid_until": {"$lte": purge_until}}, session=session)
            return True

        try:
            return self._atomically(work)
        except DuplicateKeyError:  # another process created the collection's state first
            return False

    def feed_entries(self, collection_id: str, kind: str, now: int, min_confidence: int | None = None,
                     max_tlp: int | None = None) -> Iterator[FeedEntry]:
        found = self._ranked_feed({"_id": 0, "collection_id": 0}, collection_id, kind, now, min_confidence, max_tlp)
        try:
            yield from (FeedEntry(**doc) for doc in found)
        finally:
            found.close()

    def feed_values(self, collection_id: str, kind: str, now: int, min_confidence: int | None = None,
                    max_tlp: int | None = None) -> Iterator[tuple[str, str]]:
        found = self._ranked_feed({"_id": 0, "value": 1, "indicator_types": 1}, collection_id, kind, now,
                                  min_confidence, max_tlp)
        try:
            yield from ((doc["value"], doc["indicator_types"]) for doc in found)
        finally:
            found.close()

    def _ranked_feed(self, projection: dict, collection_id: str, kind: str, now: int, min_confidence: int | None,
                     max_tlp: int | None):
        """The cursor over a feed's publishable entries active at `now`, in the order served."""
        match: dict[str, Any] = {"collection_id": collection_id, "kind": kind, "held": None,
                                 "valid_from": {"$lte": now}, "valid_until": {"$gt": now}}
        if min_confidence is not None:
            match["confidence"] = {"$gte": min_confidence}
        if max_tlp is not None:
            match["tlp"] = {"$lte": max_tlp}
        return (self._db().feed_entries.find(match, projection).hint("ranked")
                .sort([("confidence", DESCENDING), ("date_added", DESCENDING)]).batch_size(5000))

    def feed_last_boundary(self, collection_id: str, kind: str, now: int) -> int:
        entries, latest = self._db().feed_entries, 0
        for field_name in ("valid_from", "valid_until"):
            found = (entries.find({"collection_id": collection_id, "kind": kind, field_name: {"$lte": now}},
                                  {"_id": 0, field_name: 1})
                     .hint("from" if field_name == "valid_from" else "until").sort(field_name, DESCENDING).limit(1))
            latest = max([latest, *(doc[field_name] for doc in found)])
        return latest

    def feed_exclusions(self, collection_id: str, now: int, limit: int) -> tuple[list[FeedEntry], list[FeedIndicator]]:
        db = self._db()
        held = (db.feed_entries.find({"collection_id": collection_id, "held": {"$ne": None}, "valid_until": {"$gt": now}},
                                     {"_id": 0, "collection_id": 0}).sort("valid_until", ASCENDING).limit(limit))
        left_out = (db.feed_indicators.find({"collection_id": collection_id, "left_out": {"$ne": None},
                                             "valid_until": {"$gt": now}}, {"_id": 0, "collection_id": 0})
                    .sort("valid_until", ASCENDING).limit(limit))
        return [FeedEntry(**doc) for doc in held], [FeedIndicator(**doc) for doc in left_out]

# -- queries ---------------------------------------------------------------------

def _object_filter(query: ObjectQuery) -> dict:
    match: dict[str, Any] = {"collection_id": query.collection_id}
    if query.object_id is not None:
        match["object_id"] = query.object_id
    if query.ids:
        match.setdefault("$and", []).append({"object_id": {"$in": list(query.ids)}})
    if query.types:
        match["type"] = {"$in": list(query.types)}
    if query.spec_versions:
        match["spec_version"] = {"$in": list(query.spec_versions)}
    versions = _version_filter(query.versions)
    if versions:
        match.setdefault("$and", []).append(versions)
    bounds = [b for b in (query.added_after, query.after_position) if b is not None]
    if bounds:
        match["date_added"] = {"$gt": max(bounds)}
    return match


def _version_filter(versions: VersionFilter) -> dict | None:
    if versions.all:
        return None
    options: list[dict] = []
    if versions.last:
        options.append({"is_last": True})
    if versions.first:
        options.append({"is_first": True})
    if versions.exact:
        options.append({"version_key": {"$in": list(versions.exact)}})
    if not options:
        return {"_id": {"$in": []}}  # no version asked for: nothing matches
    return options[0] if len(options) == 1 else {"$or": options}


def _index_for(query: ObjectQuery) -> str:
    """The index named in the module docstring for this shape of request."""
    if query.object_id is not None or query.ids:
        return "by_id"
    versions = query.versions
    if versions.last and not (versions.first or versions.exact or versions.all):
        return "last_by_date"
    if versions.first and not (versions.last or versions.exact or versions.all):
        return "first_by_date"
    return "by_date"


# -- documents -------------------------------------------------------------------

def _object_document(collection_id: str, record: VersionRecord, is_first: bool, is_last: bool) -> dict:
    return {"collection_id": collection_id, "object_id": record.object_id, "type": record.type,
            "version": record.version, "version_key": record.version_key, "spec_version": record.spec_version,
            "date_added": record.date_added, "is_first": is_first, "is_last": is_last,
            "content_hash": record.content_hash, "body": record.body, "submitter": record.submitter,
            "submitter_key": record.submitter_key, "derived_from": record.derived_from}


def _version_record(doc: dict) -> VersionRecord:
    # Documents stored before submitters were recorded have no such fields: unknown.
    return VersionRecord(doc["object_id"], doc["type"], doc["version"], doc["version_key"], doc["spec_version"],
                         doc["date_added"], bytes(doc["content_hash"]), bytes(doc["body"]), doc.get("submitter"),
                         doc.get("submitter_key"), doc.get("derived_from"))


def _stored_version(doc: dict) -> StoredVersion:
    body = doc.get("body")
    return StoredVersion(doc["object_id"], doc["type"], doc["version"], doc["spec_version"], doc["date_added"],
                         bytes(body) if body is not None else None)


def _status_document(status: StatusRecord) -> dict:
    return {"_id": status.id, "owner": status.owner, "created": status.created, "body": status.body}


def _key_document(record: ApiKeyRecord) -> dict:
    fields = dict(vars(record))
    return {"_id": fields.pop("key_id"), **fields}


def _key_record(doc: dict) -> ApiKeyRecord:
    fields = dict(doc)
    return ApiKeyRecord(key_id=fields.pop("_id"), **fields)


def _cert_document(record: ClientCertRecord) -> dict:
    fields = dict(vars(record))
    return {"_id": fields.pop("fingerprint"), **fields}


def _cert_record(doc: dict) -> ClientCertRecord:
    fields = dict(doc)
    return ClientCertRecord(fingerprint=fields.pop("_id"), **fields)


def _by_operator(collection, operator_id: str | None):
    """Every document, or one operator's, in the order of the by_operator index."""
    match = {} if operator_id is None else {"operator_id": operator_id}
    return collection.find(match).sort([("operator_id", ASCENDING), ("created", ASCENDING)])


MINUTE = 60_000_000


def _audit_document(event: AuditEvent) -> dict:
    document = dict(vars(event))
    del document["count"]  # always 1 in the log of single requests
    return document


def _audit_match(operator_id: str | None, since: int | None, failures_only: bool, anonymous) -> dict:
    match: dict[str, Any] = {}
    if operator_id is not None:
        match["operator_id"] = operator_id
    if since is not None:
        match["at"] = {"$gte": since}
    if failures_only:  # failed authentications: anonymous and refused (401, or 429 once an address is limited)
        match["operator_id"] = anonymous
        match["status"] = {"$in": [401, 429]}
    return match


def _count_row(counts, row: dict, first: dict, count: int) -> None:
    counts.update_one(row, {"$inc": {"count": count}, "$setOnInsert": first}, upsert=True)


def _spend_one(state, bucket: str, since: int, cost: int) -> int:
    """max(tat, since) + cost, atomically: a compare-and-set, tried again when another process got there first."""
    while True:
        held = state.find_one({"_id": bucket})
        if held is None:
            try:
                state.insert_one({"_id": bucket, "tat": since + cost})
                return since + cost
            except DuplicateKeyError:
                continue
        tat = max(held["tat"], since) + cost
        if tat == held["tat"] or state.update_one({"_id": bucket, "tat": held["tat"]},
                                                  {"$set": {"tat": tat}}).matched_count:
            return tat


def _set_once(collection, document_id: str, field: str, value: int) -> bool:
    """Set `field` unless it is already set (the first revocation is kept); False when there is no such document."""
    if collection.update_one({"_id": document_id, field: None}, {"$set": {field: value}}).matched_count:
        return True
    return collection.count_documents({"_id": document_id}, limit=1) == 1


# -- compliance records ----------------------------------------------------------

def _upsert(collection, key: dict, update: dict) -> None:
    """An idempotent upsert; two processes inserting one key at once make one of them
    fail with a duplicate key, and running it again then updates the record."""
    try:
        collection.update_one(key, update, upsert=True)
    except DuplicateKeyError:
        collection.update_one(key, update, upsert=True)


def _delivery_match(collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                    since: int | None) -> dict:
    match: dict[str, Any] = {}
    for field, values in (("collection_id", collection_ids), ("operator_id", operator_ids)):
        if values is not None:
            match[field] = {"$in": list(values)}
    if since is not None:
        match["delivered_at"] = {"$gte": since}
    return match


def _after_key(names: tuple[str, ...], values: tuple) -> dict:
    """Documents whose key (`names`, compared in order) comes after `values`."""
    options = []
    for depth, name in enumerate(names):
        options.append({**{earlier: values[i] for i, earlier in enumerate(names[:depth])}, name: {"$gt": values[depth]}})
    return {"$or": options}
def _swap_feed_state(db: Database, collection_id: str, expected: FeedState | None, state: FeedState, session) -> bool:
    """Store `state` if the held one is still `expected`: the compare-and-set that lets one
    process at a time move a collection's feed entries on."""
    if expected is None:
        db.feed_state.insert_one({"_id": collection_id, **vars(state)}, session=session)  # DuplicateKeyError if taken
        return True
    held = {"_id": collection_id, **vars(expected)}
    return db.feed_state.update_one(held, {"$set": vars(state)}, session=session).matched_count == 1


def _note_removal(db: Database, collection_id: str, object_id: str, session) -> None:
    """Log that the object lost versions, at the next position of the collection's removals.
    The caller holds the collection's clock, so positions follow the order of the commits."""
    clock = db.collection_clocks.find_one_and_update({"_id": collection_id}, {"$inc": {"removals": 1}},
                                                     return_document=ReturnDocument.AFTER, session=session)
    db.removals.insert_one({"collection_id": collection_id, "seq": clock["removals"], "object_id": object_id},
                           session=session)
