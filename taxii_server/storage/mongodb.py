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
Rate-limit counters and key last-use times take `w: 1`: losing one in a
failover costs nothing, and they are written on every request.

Indexes (created at start-up, idempotently) and the queries they serve:

    objects.by_date        (collection_id, date_added), unique
        objects/manifest pages with match[version]=all, exact versions, or first+last
    objects.last_by_date   (collection_id, is_last, date_added)
        objects/manifest pages with the default match[version]=last
    objects.first_by_date  (collection_id, is_first, date_added)
        pages with match[version]=first
    objects.by_id          (collection_id, object_id, version_key), unique
        the object and versions endpoints, match[id], and the duplicate check on write
    api_keys.by_operator, client_certs.by_operator    listing per operator
    rate_counters.by_window (bucket, window), unique  one counter per key and minute
    audit_log.by_time, audit_log.by_operator          `taxii-server audit`

Every page is one `find` on one of these, bounded by `date_added > cursor`,
sorted by `date_added` and limited: no `$skip`, no aggregation, and no paging
state anywhere but in the client's `next` token.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from pymongo import ASCENDING, MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ..timestamps import now_micros
from . import StorageError, redacted
from .base import (Acknowledgement, AddOutcome, ApiKeyRecord, AuditEvent, ClientCertRecord, DeliveredPage, Delivery,
                   DeliveryCount, FalsePositive, NewVersion, ObjectQuery, Page, Poll, SightingRecord, StatusMaker,
                   StatusRecord, Store, StoredVersion, VersionFilter, VersionRecord)
from .planning import HeldVersion, WritePlan, plan_additions, plan_import

T = TypeVar("T")
DEFAULT_DATABASE = "taxii"
DURABLE = WriteConcern("majority")
COMMITTED = ReadConcern("majority")
CHEAP = WriteConcern(w=1)

COLLECTIONS = ("objects", "collection_clocks", "statuses", "api_keys", "client_certs", "rate_counters", "audit_log")
INDEXES: dict[str, list[tuple[str, list[tuple[str, int]], dict]]] = {
    "objects": [
        ("by_date", [("collection_id", ASCENDING), ("date_added", ASCENDING)], {"unique": True}),
        ("last_by_date", [("collection_id", ASCENDING), ("is_last", ASCENDING), ("date_added", ASCENDING)], {}),
        ("first_by_date", [("collection_id", ASCENDING), ("is_first", ASCENDING), ("date_added", ASCENDING)], {}),
        ("by_id", [("collection_id", ASCENDING), ("object_id", ASCENDING), ("version_key", ASCENDING)],
         {"unique": True}),
    ],
    "api_keys": [("by_operator", [("operator_id", ASCENDING), ("created", ASCENDING)], {})],
    "client_certs": [("by_operator", [("operator_id", ASCENDING), ("created", ASCENDING)], {})],
    "rate_counters": [("by_window", [("bucket", ASCENDING), ("window", ASCENDING)], {"unique": True})],
    "audit_log": [
        ("by_time", [("at", ASCENDING), ("_id", ASCENDING)], {}),
        ("by_operator", [("operator_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)], {}),
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
# writes are then serialised within this one process instead.
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
        with self._client().start_session() as session:
            return session.with_transaction(work, read_concern=ReadConcern("snapshot"), write_concern=DURABLE)

    def close(self) -> None:
        with self._client_lock:
            handles = self._by_process.pop(os.getpid(), None)
        if handles is not None:
            handles.client.close()

    # -- objects -----------------------------------------------------------------
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None) -> list[AddOutcome]:
        if not versions and status_for is None:
            return []

        def work(session) -> list[AddOutcome]:
            db = self._db()
            clock = self._take_clock(db, collection_id, session) if versions else 0
            held = self._held_versions(db, collection_id, {new.object_id for new in versions}, session)
            plan = plan_additions(versions, held, clock, now_micros)
            status = status_for(plan.outcomes) if status_for is not None else None
            self._write_plan(db, collection_id, plan, session)
            if status is not None:
                db.statuses.insert_one(_status_document(status), session=session)
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
            {"_id": 0, "object_id": 1, "version_key": 1, "content_hash": 1, "version": 1},
            session=session).hint("by_id")
        for doc in found:
            held.setdefault(doc["object_id"], []).append(
                HeldVersion(doc["version_key"], bytes(doc["content_hash"]), doc["version"]))
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
        records = [_stored_version(doc) for doc in self.page_cursor(query)]
        return Page(records=records[: query.limit], more=len(records) > query.limit)

    def page_cursor(self, query: ObjectQuery):
        """The one `find` that reads a page (one record more than the limit, to tell
        whether more follow); `explain()` on it shows the index that serves it."""
        projection = {"_id": 0, "object_id": 1, "type": 1, "version": 1, "spec_version": 1, "date_added": 1}
        if query.with_body:
            projection["body"] = 1
        return (self._db().objects.find(_object_filter(query), projection)
                .hint(_index_for(query)).sort("date_added", ASCENDING).limit(query.limit + 1))

    def object_exists(self, collection_id: str, object_id: str) -> bool:
        found = self._db().objects.find({"collection_id": collection_id, "object_id": object_id},
                                        {"_id": 1}).hint("by_id").limit(1)
        return any(True for _ in found)

    def delete_versions(self, collection_id: str, object_id: str,
                        versions: VersionFilter, spec_versions: tuple[str, ...]) -> int:
        match = _object_filter(ObjectQuery(collection_id=collection_id, limit=0, object_id=object_id,
                                           versions=versions, spec_versions=spec_versions))

        def work(session) -> int:
            db = self._db()
            self._take_clock(db, collection_id, session)  # one writer per collection, so flags stay consistent
            deleted = db.objects.delete_many(match, session=session).deleted_count
            if deleted:
                self._refresh_first_and_last(db, collection_id, object_id, session)
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

    # -- rate limits ---------------------------------------------------------------
    def count_request(self, bucket: str, window: int) -> int:
        counters = self._db(cheap=True).rate_counters
        try:
            counter = _count_one(counters, bucket, window)
        except DuplicateKeyError:  # two requests created the window's counter at once; it exists now
            counter = _count_one(counters, bucket, window)
        if counter["count"] == 1:  # a new window: the bucket's older ones are of no further use
            counters.delete_many({"bucket": bucket, "window": {"$lt": window}})
        return counter["count"]

    # -- audit trail -------------------------------------------------------------
    def record_audit(self, event: AuditEvent) -> None:
        self._db().audit_log.insert_one(dict(vars(event)))

    def query_audit(self, operator_id: str | None = None, since: int | None = None,
                    failures_only: bool = False, limit: int = 1000) -> list[AuditEvent]:
        match: dict[str, Any] = {}
        if operator_id is not None:
            match["operator_id"] = operator_id
        if since is not None:
            match["at"] = {"$gte": since}
        if failures_only:
            match["operator_id"] = None
        found = self._db().audit_log.find(match, {"_id": 0}).sort([("at", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [AuditEvent(**doc) for doc in found]

    # -- copying a whole store ---------------------------------------------------
    def collection_ids(self) -> list[str]:
        # A clock gets last_date_added with its first stored version; a write that stored nothing leaves none.
        clocks = self._db().collection_clocks.find({"last_date_added": {"$exists": True}}, {"_id": 1})
        return [doc["_id"] for doc in clocks.sort("_id", ASCENDING)]

    def export_versions(self, collection_id: str, after_position: int | None, limit: int) -> list[VersionRecord]:
        found = (self._db().objects.find({"collection_id": collection_id, "date_added": {"$gt": after_position or 0}})
                 .hint("by_date").sort("date_added", ASCENDING).limit(limit))
        return [VersionRecord(doc["object_id"], doc["type"], doc["version"], doc["version_key"], doc["spec_version"],
                              doc["date_added"], bytes(doc["content_hash"]), bytes(doc["body"])) for doc in found]

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
            "content_hash": record.content_hash, "body": record.body}


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


def _count_one(counters, bucket: str, window: int) -> dict:
    return counters.find_one_and_update({"bucket": bucket, "window": window}, {"$inc": {"count": 1}},
                                        upsert=True, return_document=ReturnDocument.AFTER)


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
