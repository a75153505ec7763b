"""The embedded SQLite backend (the default).

One database file in WAL mode. Writers take the write lock first
(`BEGIN IMMEDIATE`), then read the collection's clock and assign `date_added`
inside that same transaction: commits are serialised, so a version committed
later always carries a later `date_added`, and a poller using `added_after`
can never miss one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path

from ..timestamps import now_micros
from .base import (AddOutcome, ApiKeyRecord, AuditEvent, ClientCertRecord, FeedEntry, FeedIndicator, FeedState, NewVersion,
                   ObjectQuery, Page, StatusMaker, StatusRecord, Store, StoredVersion, VersionFilter, VersionRecord)
from .planning import HeldVersion, WritePlan, plan_additions, plan_import

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    pk            INTEGER PRIMARY KEY,
    collection_id TEXT    NOT NULL,
    object_id     TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    version_key   INTEGER NOT NULL,
    spec_version  TEXT    NOT NULL,
    date_added    INTEGER NOT NULL,
    is_first      INTEGER NOT NULL,
    is_last       INTEGER NOT NULL,
    content_hash  BLOB    NOT NULL,
    body          BLOB    NOT NULL
);
-- Serves every page with match[version]=all (and exact versions), in date_added order.
CREATE UNIQUE INDEX IF NOT EXISTS objects_by_date ON objects (collection_id, date_added);
-- Serves the default match[version]=last: only the latest version of each object.
CREATE INDEX IF NOT EXISTS objects_last_by_date ON objects (collection_id, date_added) WHERE is_last = 1;
CREATE INDEX IF NOT EXISTS objects_first_by_date ON objects (collection_id, date_added) WHERE is_first = 1;
-- One row per (collection, object, version); serves by-id requests and duplicate checks.
CREATE UNIQUE INDEX IF NOT EXISTS objects_by_id ON objects (collection_id, object_id, version_key);

CREATE TABLE IF NOT EXISTS collection_clock (
    collection_id TEXT PRIMARY KEY,
    last_date_added INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS statuses (
    id      TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    created INTEGER NOT NULL,
    body    BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created     INTEGER NOT NULL,
    expires     INTEGER,
    revoked     INTEGER,
    last_used   INTEGER,
    label       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS api_keys_by_operator ON api_keys (operator_id);

CREATE TABLE IF NOT EXISTS client_certs (
    fingerprint TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created     INTEGER NOT NULL,
    expires     INTEGER,
    revoked     INTEGER,
    label       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS client_certs_by_operator ON client_certs (operator_id);

CREATE TABLE IF NOT EXISTS rate_counters (
    bucket TEXT    NOT NULL,
    window INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (bucket, window)
);

CREATE TABLE IF NOT EXISTS audit_log (
    seq           INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    operator_id   TEXT,
    key_id        TEXT,
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    collection_id TEXT,
    status        INTEGER NOT NULL,
    objects       INTEGER NOT NULL,
    client        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_by_operator ON audit_log (operator_id, at);
-- The trail is append-only: the database itself refuses to rewrite or erase it.
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

# Feed entries (taxii_server/feeds): kept current by reading each collection onwards from
# `feed_state.cursor`, never by the object writes themselves.
FEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed_state (
    collection_id TEXT PRIMARY KEY,
    cursor        INTEGER NOT NULL,
    changed_at    INTEGER NOT NULL,
    rules         TEXT    NOT NULL,
    removals      INTEGER NOT NULL
);
-- Objects that lost versions to DELETE, in order (seq grows with each commit: writes are serialised).
CREATE TABLE IF NOT EXISTS removals (
    seq           INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL,
    object_id     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS removals_by_collection ON removals (collection_id, seq);
CREATE TABLE IF NOT EXISTS feed_indicators (
    collection_id TEXT    NOT NULL,
    indicator_id  TEXT    NOT NULL,
    version_key   INTEGER NOT NULL,
    valid_until   INTEGER NOT NULL,
    left_out      TEXT,
    PRIMARY KEY (collection_id, indicator_id)
);
CREATE INDEX IF NOT EXISTS feed_indicators_left_out ON feed_indicators (collection_id, valid_until)
    WHERE left_out IS NOT NULL;
CREATE TABLE IF NOT EXISTS feed_entries (
    collection_id   TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    indicator_id    TEXT    NOT NULL,
    date_added      INTEGER NOT NULL,
    valid_from      INTEGER NOT NULL,
    valid_until     INTEGER NOT NULL,
    confidence      INTEGER NOT NULL,
    tlp             INTEGER NOT NULL,
    indicator_types TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    held            TEXT
);
-- A feed in the order it is served, publishable entries only: a request reads its own entries,
-- from this index alone (it covers every column a feed reads).
CREATE INDEX IF NOT EXISTS feed_entries_ranked
    ON feed_entries (collection_id, kind, confidence DESC, date_added DESC, valid_from, valid_until, tlp, value,
                     indicator_types, indicator_id, name, held) WHERE held IS NULL;
-- The latest start and end of validity at or before now: what ETag and Last-Modified follow.
CREATE INDEX IF NOT EXISTS feed_entries_until ON feed_entries (collection_id, kind, valid_until);
CREATE INDEX IF NOT EXISTS feed_entries_from ON feed_entries (collection_id, kind, valid_from);
CREATE INDEX IF NOT EXISTS feed_entries_by_indicator ON feed_entries (collection_id, indicator_id);
-- What has expired, across kinds: purged when entries next change; and the report's held entries.
CREATE INDEX IF NOT EXISTS feed_entries_expiry ON feed_entries (collection_id, valid_until);
"""

_COLUMNS = "object_id, type, version, spec_version, date_added"
# Well under SQLite's limit on parameters in one statement.
_IDS_PER_SELECT = 500


class SQLiteStore(Store):
    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().executescript(SCHEMA)
        self._connection().executescript(FEED_SCHEMA)

    # -- connections -----------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and per process: gunicorn forks workers,
        # and sqlite3 connections must not cross either boundary.
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _write(self):
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- objects -----------------------------------------------------------------
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None) -> list[AddOutcome]:
        if not versions and status_for is None:
            return []
        with self._write() as db:
            held = self._held_versions(db, collection_id, {new.object_id for new in versions})
            plan = plan_additions(versions, held, self._read_clock(db, collection_id), now_micros)
            status = status_for(plan.outcomes) if status_for is not None else None
            self._write_plan(db, collection_id, plan)
            if status is not None:
                self._insert_status(db, status)
        return plan.outcomes

    @staticmethod
    def _read_clock(db, collection_id: str) -> int:
        row = db.execute("SELECT last_date_added FROM collection_clock WHERE collection_id = ?",
                         (collection_id,)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _held_versions(db, collection_id: str, object_ids: set[str]) -> dict[str, list[HeldVersion]]:
        held: dict[str, list[HeldVersion]] = {}
        ids = sorted(object_ids)
        for start in range(0, len(ids), _IDS_PER_SELECT):
            chunk = ids[start:start + _IDS_PER_SELECT]
            rows = db.execute(
                f"SELECT object_id, version_key, content_hash, version FROM objects INDEXED BY objects_by_id"
                f" WHERE collection_id = ? AND object_id IN ({_marks(chunk)})", (collection_id, *chunk))
            for object_id, version_key, content_hash, version in rows:
                held.setdefault(object_id, []).append(HeldVersion(version_key, content_hash, version))
        return held

    @staticmethod
    def _write_plan(db, collection_id: str, plan: WritePlan) -> None:
        for flag, object_ids in (("is_first", plan.demote_first), ("is_last", plan.demote_last)):
            db.executemany(f"UPDATE objects SET {flag} = 0 WHERE collection_id = ? AND object_id = ? AND {flag} = 1",
                           [(collection_id, object_id) for object_id in object_ids])
        db.executemany(
            "INSERT INTO objects (collection_id, object_id, type, version, version_key, spec_version, date_added,"
            " is_first, is_last, content_hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(collection_id, r.object_id, r.type, r.version, r.version_key, r.spec_version, r.date_added,
              int(row.is_first), int(row.is_last), r.content_hash, r.body) for row in plan.rows for r in [row.record]])
        if plan.rows:
            db.execute(
                "INSERT INTO collection_clock (collection_id, last_date_added) VALUES (?, ?) "
                "ON CONFLICT (collection_id) DO UPDATE SET last_date_added = MAX(last_date_added, excluded.last_date_added)",
                (collection_id, plan.clock))

    def query(self, query: ObjectQuery) -> Page:
        columns = _COLUMNS + (", body" if query.with_body else "")
        where, params = _where(query)
        sql = f"SELECT {columns} FROM {_source(query)} WHERE {where} ORDER BY date_added LIMIT ?"
        rows = self._connection().execute(sql, (*params, query.limit + 1)).fetchall()
        more = len(rows) > query.limit
        records = [StoredVersion(*row) for row in rows[: query.limit]]
        return Page(records=records, more=more)

    def object_exists(self, collection_id: str, object_id: str) -> bool:
        row = self._connection().execute(
            "SELECT 1 FROM objects WHERE collection_id = ? AND object_id = ? LIMIT 1",
            (collection_id, object_id)).fetchone()
        return row is not None

    def delete_versions(self, collection_id: str, object_id: str,
                        versions: VersionFilter, spec_versions: tuple[str, ...]) -> int:
        query = ObjectQuery(collection_id=collection_id, limit=0, object_id=object_id,
                            versions=versions, spec_versions=spec_versions)
        where, params = _where(query)
        with self._write() as db:
            deleted = db.execute(f"DELETE FROM {_source(query)} WHERE {where}", params).rowcount
            if deleted:
                self._refresh_first_and_last(db, collection_id, object_id)
                db.execute("INSERT INTO removals (collection_id, object_id) VALUES (?, ?)", (collection_id, object_id))
        return deleted

    @staticmethod
    def _refresh_first_and_last(db, collection_id: str, object_id: str) -> None:
        db.execute(
            "UPDATE objects SET"
            " is_first = (version_key = (SELECT MIN(version_key) FROM objects WHERE collection_id = ?1 AND object_id = ?2)),"
            " is_last  = (version_key = (SELECT MAX(version_key) FROM objects WHERE collection_id = ?1 AND object_id = ?2))"
            " WHERE collection_id = ?1 AND object_id = ?2",
            (collection_id, object_id),
        )

    def count_versions(self, collection_id: str) -> int:
        return self._connection().execute(
            "SELECT COUNT(*) FROM objects WHERE collection_id = ?", (collection_id,)).fetchone()[0]

    # -- statuses ----------------------------------------------------------------
    def save_status(self, status_id: str, owner: str, created: int, body: bytes) -> None:
        with self._write() as db:
            self._insert_status(db, StatusRecord(status_id, owner, created, body))

    @staticmethod
    def _insert_status(db, status: StatusRecord) -> None:
        db.execute("INSERT INTO statuses (id, owner, created, body) VALUES (?, ?, ?, ?)",
                   (status.id, status.owner, status.created, status.body))

    def load_status(self, status_id: str) -> tuple[str, bytes] | None:
        row = self._connection().execute("SELECT owner, body FROM statuses WHERE id = ?", (status_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    # -- keys --------------------------------------------------------------------
    def add_key(self, record: ApiKeyRecord) -> None:
        with self._write() as db:
            db.execute(f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", astuple(record))

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._connection().execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return ApiKeyRecord(*row) if row else None

    def list_keys(self, operator_id: str | None = None) -> list[ApiKeyRecord]:
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys"
        params: tuple = ()
        if operator_id is not None:
            sql, params = sql + " WHERE operator_id = ?", (operator_id,)
        rows = self._connection().execute(sql + " ORDER BY operator_id, created", params).fetchall()
        return [ApiKeyRecord(*row) for row in rows]

    def revoke_key(self, key_id: str, at: int) -> bool:
        with self._write() as db:
            return db.execute("UPDATE api_keys SET revoked = COALESCE(revoked, ?) WHERE key_id = ?",
                              (at, key_id)).rowcount == 1

    def set_key_expiry(self, key_id: str, expires: int | None) -> bool:
        with self._write() as db:
            return db.execute("UPDATE api_keys SET expires = ? WHERE key_id = ?", (expires, key_id)).rowcount == 1

    def touch_key(self, key_id: str, at: int) -> None:
        with self._write() as db:
            db.execute("UPDATE api_keys SET last_used = ? WHERE key_id = ?", (at, key_id))

    # -- client certificates -----------------------------------------------------
    def add_client_cert(self, record: ClientCertRecord) -> bool:
        with self._write() as db:
            return db.execute(f"INSERT INTO client_certs ({_CLIENT_CERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                              " ON CONFLICT (fingerprint) DO NOTHING", astuple(record)).rowcount == 1

    def find_client_cert(self, fingerprint: str) -> ClientCertRecord | None:
        row = self._connection().execute(
            f"SELECT {_CLIENT_CERT_COLUMNS} FROM client_certs WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return ClientCertRecord(*row) if row else None

    def list_client_certs(self, operator_id: str | None = None) -> list[ClientCertRecord]:
        sql, params = f"SELECT {_CLIENT_CERT_COLUMNS} FROM client_certs", ()
        if operator_id is not None:
            sql, params = sql + " WHERE operator_id = ?", (operator_id,)
        rows = self._connection().execute(sql + " ORDER BY operator_id, created", params).fetchall()
        return [ClientCertRecord(*row) for row in rows]

    def revoke_client_cert(self, fingerprint: str, at: int) -> bool:
        with self._write() as db:
            return db.execute("UPDATE client_certs SET revoked = COALESCE(revoked, ?) WHERE fingerprint = ?",
                              (at, fingerprint)).rowcount == 1

    # -- rate limits ---------------------------------------------------------------
    def count_request(self, bucket: str, window: int) -> int:
        with self._write() as db:
            (count,) = db.execute(
                "INSERT INTO rate_counters (bucket, window, count) VALUES (?, ?, 1) "
                "ON CONFLICT (bucket, window) DO UPDATE SET count = count + 1 RETURNING count",
                (bucket, window)).fetchone()
            if count == 1:  # a new window: the bucket's older ones are of no further use
                db.execute("DELETE FROM rate_counters WHERE bucket = ? AND window < ?", (bucket, window))
        return count

    # -- audit trail -------------------------------------------------------------
    def record_audit(self, event: AuditEvent) -> None:
        with self._write() as db:
            db.execute(f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (event.at, event.method, event.path, event.status, event.client, event.operator_id,
                        event.key_id, event.collection_id, event.objects))

    def query_audit(self, operator_id: str | None = None, since: int | None = None,
                    failures_only: bool = False, limit: int = 1000) -> list[AuditEvent]:
        clauses, params = ["1"], []
        if operator_id is not None:
            clauses.append("operator_id = ?")
            params.append(operator_id)
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        if failures_only:
            clauses.append("operator_id IS NULL")
        rows = self._connection().execute(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY at, seq LIMIT ?",
            (*params, limit)).fetchall()
        return [AuditEvent(*row) for row in rows]

    # -- copying a whole store ---------------------------------------------------
    def collection_ids(self) -> list[str]:
        rows = self._connection().execute("SELECT collection_id FROM collection_clock ORDER BY collection_id")
        return [row[0] for row in rows]

    def export_versions(self, collection_id: str, after_position: int | None, limit: int) -> list[VersionRecord]:
        rows = self._connection().execute(
            f"SELECT {_RECORD_COLUMNS} FROM objects WHERE collection_id = ? AND date_added > ?"
            " ORDER BY date_added LIMIT ?", (collection_id, after_position or 0, limit))
        return [VersionRecord(*row) for row in rows]

    def import_versions(self, collection_id: str, records: list[VersionRecord]) -> int:
        with self._write() as db:
            held = self._held_versions(db, collection_id, {record.object_id for record in records})
            plan = plan_import(collection_id, records, held, self._read_clock(db, collection_id))
            self._write_plan(db, collection_id, plan)
        return len(plan.rows)

    def export_statuses(self, after_id: str | None, limit: int) -> list[StatusRecord]:
        rows = self._connection().execute(
            "SELECT id, owner, created, body FROM statuses WHERE id > ? ORDER BY id LIMIT ?", (after_id or "", limit))
        return [StatusRecord(id_, owner, created, bytes(body)) for id_, owner, created, body in rows]

    def import_statuses(self, records: list[StatusRecord]) -> int:
        with self._write() as db:
            return sum(db.execute("INSERT INTO statuses (id, owner, created, body) VALUES (?, ?, ?, ?)"
                                  " ON CONFLICT (id) DO NOTHING",
                                  (r.id, r.owner, r.created, r.body)).rowcount for r in records)

    def put_key(self, record: ApiKeyRecord) -> None:
        with self._write() as db:
            db.execute(f"INSERT OR REPLACE INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       astuple(record))

    def put_client_cert(self, record: ClientCertRecord) -> None:
        with self._write() as db:
            db.execute(f"INSERT OR REPLACE INTO client_certs ({_CLIENT_CERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       astuple(record))


    # -- feeds: plain lists for firewalls and resolvers (taxii_server/feeds) ----------
    def feed_state(self, collection_id: str) -> FeedState | None:
        row = self._connection().execute(
            f"SELECT {_FEED_STATE_COLUMNS} FROM feed_state WHERE collection_id = ?", (collection_id,)).fetchone()
        return FeedState(*row) if row else None

    def removals(self, collection_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        return self._connection().execute(
            "SELECT seq, object_id FROM removals WHERE collection_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (collection_id, after, limit)).fetchall()

    def feed_indicator_versions(self, collection_id: str, indicator_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(indicator_ids), _IDS_PER_SELECT):
            chunk = indicator_ids[start:start + _IDS_PER_SELECT]
            found.update(self._connection().execute(
                f"SELECT indicator_id, version_key FROM feed_indicators"
                f" WHERE collection_id = ? AND indicator_id IN ({_marks(chunk)})", (collection_id, *chunk)))
        return found

    def apply_feed_changes(self, collection_id: str, expected: FeedState | None, state: FeedState,
                           indicators: list[FeedIndicator], start_over: bool = False,
                           purge_until: int | None = None) -> bool:
        with self._write() as db:
            row = db.execute(f"SELECT {_FEED_STATE_COLUMNS} FROM feed_state WHERE collection_id = ?",
                             (collection_id,)).fetchone()
            if (FeedState(*row) if row else None) != expected:
                return False
            if start_over:
                db.execute("DELETE FROM feed_entries WHERE collection_id = ?", (collection_id,))
                db.execute("DELETE FROM feed_indicators WHERE collection_id = ?", (collection_id,))
            elif indicators:
                db.executemany("DELETE FROM feed_entries WHERE collection_id = ? AND indicator_id = ?",
                               [(collection_id, indicator.indicator_id) for indicator in indicators])
            db.executemany(
                "INSERT OR REPLACE INTO feed_indicators (collection_id, indicator_id, version_key, valid_until, left_out)"
                " VALUES (?, ?, ?, ?, ?)",
                [(collection_id, i.indicator_id, i.version_key, i.valid_until, i.left_out) for i in indicators])
            db.executemany(
                f"INSERT INTO feed_entries (collection_id, {_FEED_ENTRY_COLUMNS}) VALUES (?, {_marks(range(11))})",
                [(collection_id, *entry) for indicator in indicators for entry in indicator.entries])
            if purge_until is not None:
                db.execute("DELETE FROM feed_entries WHERE collection_id = ? AND valid_until <= ?",
                           (collection_id, purge_until))
            db.execute(f"INSERT OR REPLACE INTO feed_state (collection_id, {_FEED_STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                       (collection_id, *astuple(state)))
        return True

    def feed_entries(self, collection_id: str, kind: str, now: int, min_confidence: int | None = None,
                     max_tlp: int | None = None) -> Iterator[FeedEntry]:
        for rows in self._ranked_feed(_FEED_ENTRY_COLUMNS, collection_id, kind, now, min_confidence, max_tlp):
            yield from map(FeedEntry._make, rows)

    def feed_values(self, collection_id: str, kind: str, now: int, min_confidence: int | None = None,
                    max_tlp: int | None = None) -> Iterator[tuple[str, str]]:
        for rows in self._ranked_feed("value, indicator_types", collection_id, kind, now, min_confidence, max_tlp):
            yield from rows

    def _ranked_feed(self, columns: str, collection_id: str, kind: str, now: int, min_confidence: int | None,
                     max_tlp: int | None) -> Iterator[list[tuple]]:
        """Batches of rows of a feed in the order served, read from the covering index alone."""
        clauses, params = ["collection_id = ?", "kind = ?", "held IS NULL", "valid_from <= ?", "valid_until > ?"], \
            [collection_id, kind, now, now]
        for clause, bound in (("confidence >= ?", min_confidence), ("tlp <= ?", max_tlp)):
            if bound is not None:
                clauses.append(clause)
                params.append(bound)
        cursor = self._connection().execute(
            f"SELECT {columns} FROM feed_entries INDEXED BY feed_entries_ranked"
            f" WHERE {' AND '.join(clauses)} ORDER BY confidence DESC, date_added DESC", params)
        try:
            while rows := cursor.fetchmany(5000):
                yield rows
        finally:
            cursor.close()

    def feed_last_boundary(self, collection_id: str, kind: str, now: int) -> int:
        row = self._connection().execute(
            "SELECT (SELECT MAX(valid_from) FROM feed_entries WHERE collection_id = ?1 AND kind = ?2 AND valid_from <= ?3),"
            " (SELECT MAX(valid_until) FROM feed_entries WHERE collection_id = ?1 AND kind = ?2 AND valid_until <= ?3)",
            (collection_id, kind, now)).fetchone()
        return max(row[0] or 0, row[1] or 0)

    def feed_exclusions(self, collection_id: str, now: int, limit: int) -> tuple[list[FeedEntry], list[FeedIndicator]]:
        db = self._connection()
        held = db.execute(f"SELECT {_FEED_ENTRY_COLUMNS} FROM feed_entries INDEXED BY feed_entries_expiry"
                          " WHERE collection_id = ? AND held IS NOT NULL AND valid_until > ? ORDER BY valid_until LIMIT ?",
                          (collection_id, now, limit)).fetchall()
        left_out = db.execute("SELECT indicator_id, version_key, valid_until, left_out FROM feed_indicators"
                              " WHERE collection_id = ? AND left_out IS NOT NULL AND valid_until > ?"
                              " ORDER BY valid_until LIMIT ?", (collection_id, now, limit)).fetchall()
        return [FeedEntry(*row) for row in held], [FeedIndicator(*row) for row in left_out]

_AUDIT_COLUMNS = "at, method, path, status, client, operator_id, key_id, collection_id, objects"
_CLIENT_CERT_COLUMNS = "fingerprint, operator_id, subject, created, expires, revoked, label"
_RECORD_COLUMNS = "object_id, type, version, version_key, spec_version, date_added, content_hash, body"
_FEED_STATE_COLUMNS = "cursor, changed_at, rules, removals"
_FEED_ENTRY_COLUMNS = ("kind, value, indicator_id, date_added, valid_from, valid_until, confidence, tlp,"
                       " indicator_types, name, held")
_KEY_COLUMNS = "key_id, operator_id, secret_hash, created, expires, revoked, last_used, label"


def _source(query: ObjectQuery) -> str:
    # Requests naming objects touch a handful of rows through the id index; without
    # this hint the planner may walk the date index across the whole collection.
    return "objects INDEXED BY objects_by_id" if query.object_id or query.ids else "objects"


def _where(query: ObjectQuery) -> tuple[str, list]:
    clauses = ["collection_id = ?"]
    params: list = [query.collection_id]
    if query.object_id is not None:
        clauses.append("object_id = ?")
        params.append(query.object_id)
    if query.ids:
        clauses.append(f"object_id IN ({_marks(query.ids)})")
        params.extend(query.ids)
    if query.types:
        clauses.append(f"type IN ({_marks(query.types)})")
        params.extend(query.types)
    if query.spec_versions:
        clauses.append(f"spec_version IN ({_marks(query.spec_versions)})")
        params.extend(query.spec_versions)
    version_clause, version_params = _version_clause(query.versions)
    if version_clause:
        clauses.append(version_clause)
        params.extend(version_params)
    bounds = [b for b in (query.added_after, query.after_position) if b is not None]
    if bounds:
        lower_bound = max(bounds)
        clauses.append("date_added > ?")
        params.append(lower_bound)
    return " AND ".join(clauses), params


def _version_clause(versions: VersionFilter) -> tuple[str | None, list]:
    if versions.all:
        return None, []
    # Written as literal `is_last = 1` so SQLite can pick the partial index.
    options, params = [], []
    if versions.last:
        options.append("is_last = 1")
    if versions.first:
        options.append("is_first = 1")
    if versions.exact:
        options.append(f"version_key IN ({_marks(versions.exact)})")
        params.extend(versions.exact)
    if not options:
        return "0", []
    return (options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"), params


def _marks(values) -> str:
    return ", ".join("?" * len(values))
