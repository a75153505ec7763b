"""The embedded SQLite backend (the default).

One database file in WAL mode. Writers take the write lock first
(`BEGIN IMMEDIATE`), then read the collection's clock and assign `date_added`
inside that same transaction: commits are serialised, so a version committed
later always carries a later `date_added`, and a poller using `added_after`
can never miss one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path

import orjson

from ..file_modes import private_file
from ..timestamps import now_micros
from .base import (Acknowledgement, AddOutcome, ApiKeyRecord, AuditEvent, AuditMaker, ClientCertRecord, DeliveredPage,
                   Delivery, DeliveryCount, FalsePositive, FeedEntry, FeedIndicator, FeedState, NewVersion,
                   ObjectQuery, Page, Poll, PortalSession, SightingRecord, StatusMaker, StatusRecord, Store,
                   StoreBusy, StoredVersion, Submission, VersionFilter, VersionRecord, newest_sent, take_page)
from .page_cache import KeyCache, PageCache, State
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
    body          BLOB    NOT NULL,
    submitter     TEXT,
    submitter_key TEXT,
    derived_from  TEXT
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
-- Serves the purge of expired statuses.
CREATE INDEX IF NOT EXISTS statuses_by_created ON statuses (created);

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

-- One GCRA state per rate-limited bucket (an API key, a client address): its theoretical arrival time.
CREATE TABLE IF NOT EXISTS rate_state (
    bucket TEXT PRIMARY KEY,
    tat    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_state_by_time ON rate_state (tat);

-- Portal sign-ins (taxii_server/portal/sessions.py): the token's hash, never the token.
CREATE TABLE IF NOT EXISTS portal_sessions (
    token_hash     TEXT PRIMARY KEY,
    operator_id    TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    previous_visit INTEGER,
    ended          INTEGER
);
CREATE INDEX IF NOT EXISTS portal_sessions_by_key ON portal_sessions (key_id, last_seen);

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

-- Refused and anonymous requests, counted: one row per minute, client, operator, key id and status.
CREATE TABLE IF NOT EXISTS audit_counts (
    minute        INTEGER NOT NULL,
    client        TEXT    NOT NULL,
    operator_id   TEXT    NOT NULL,  -- '' when none
    key_id        TEXT    NOT NULL,  -- '' when none
    status        INTEGER NOT NULL,
    at            INTEGER NOT NULL,  -- the first such request in the minute
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    collection_id TEXT,
    objects       INTEGER NOT NULL DEFAULT 0,
    count         INTEGER NOT NULL,
    PRIMARY KEY (minute, client, operator_id, key_id, status)
);
CREATE INDEX IF NOT EXISTS audit_counts_by_time ON audit_counts (at);
-- Counts only ever grow; nothing else in a row changes, and no row goes.
CREATE TRIGGER IF NOT EXISTS audit_counts_only_grow BEFORE UPDATE ON audit_counts
    WHEN NEW.count < OLD.count OR NEW.at != OLD.at OR NEW.method != OLD.method OR NEW.path != OLD.path
      OR NEW.minute != OLD.minute OR NEW.client != OLD.client OR NEW.operator_id != OLD.operator_id
      OR NEW.key_id != OLD.key_id OR NEW.status != OLD.status
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_counts_no_delete BEFORE DELETE ON audit_counts
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

log = logging.getLogger(__name__)

_COLUMNS = "object_id, type, version, spec_version, date_added"
# Columns added after the first release, with their types: a store made before
# them gets them on opening (NULL in its existing rows: submitter unknown).
_ADDED_OBJECT_COLUMNS = {"submitter": "TEXT", "submitter_key": "TEXT", "derived_from": "TEXT"}
# Well under SQLite's limit on parameters in one statement.
_IDS_PER_SELECT = 500


# How long a write waits for another's lock before the request is answered 503.
# Every write is short (one envelope, one deletion, one batch of bookkeeping), so a
# longer wait means the store is overloaded, and the client had better come back.
WRITE_WAIT_SECONDS = 5.0


class SQLiteStore(Store):
    def __init__(self, path: str | os.PathLike, write_wait: float = WRITE_WAIT_SECONDS):
        self.path, self.write_wait = str(path), write_wait
        if self.path != ":memory:":
            private_file(Path(self.path))  # before SQLite creates it with the umask's mode
        self._local = threading.local()
        for script in (SCHEMA, COMPLIANCE_SCHEMA, FEED_SCHEMA):
            self._connection().executescript(script)
        self._add_missing_columns()

    # -- connections -----------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and per process: gunicorn forks workers,
        # and sqlite3 connections must not cross either boundary.
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            db = sqlite3.connect(self.path, isolation_level=None, timeout=self.write_wait, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(self.write_wait * 1000)}")
            self._local.db, self._local.pid = db, os.getpid()
            self._local.pages, self._local.keys = PageCache(), KeyCache()
        return db

    @contextmanager
    def _write(self):
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy_or(exc) from None
        try:
            yield db
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _busy_or(exc) from None
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise _busy_or(exc) from None

    def _add_missing_columns(self) -> None:
        # Checked again under the write lock: workers opening an old store together add each column once.
        with self._write() as db:
            present = {row[1] for row in db.execute("PRAGMA table_info(objects)")}
            for name, kind in _ADDED_OBJECT_COLUMNS.items():
                if name not in present:
                    db.execute(f"ALTER TABLE objects ADD COLUMN {name} {kind}")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- operations ------------------------------------------------------------
    def ready(self, deadline: float) -> bool:
        db = self._connection()
        give_up = time.monotonic() + deadline
        # SQLite calls this every 1000 virtual-machine steps; True aborts the statement.
        db.set_progress_handler(lambda: time.monotonic() > give_up, 1000)
        try:
            db.execute("SELECT 1 FROM collection_clock LIMIT 1").fetchall()
            return True
        except sqlite3.Error as exc:
            log.warning("the store is not ready: %s", exc)
            return False
        finally:
            db.set_progress_handler(None, 0)

    def size_bytes(self) -> int | None:
        (pages, page_size), = self._connection().execute(
            "SELECT page_count, page_size FROM pragma_page_count, pragma_page_size").fetchall()
        return pages * page_size

    # -- objects -----------------------------------------------------------------
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None, audit_for: AuditMaker | None = None,
                     submitted_by: Submission | None = None) -> list[AddOutcome]:
        if not versions and status_for is None and audit_for is None:
            return []
        with self._write() as db:
            held = self._held_versions(db, collection_id, {new.object_id for new in versions})
            plan = plan_additions(versions, held, self._read_clock(db, collection_id), now_micros, submitted_by)
            status = status_for(plan.outcomes) if status_for is not None else None
            event = audit_for(plan.outcomes) if audit_for is not None else None
            self._write_plan(db, collection_id, plan)
            if status is not None:
                self._insert_status(db, status)
            if event is not None:
                _append_to_trail(db, [event])
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
                f"SELECT object_id, version_key, content_hash, version, date_added, submitter"
                f" FROM objects INDEXED BY objects_by_id"
                f" WHERE collection_id = ? AND object_id IN ({_marks(chunk)})", (collection_id, *chunk))
            for object_id, *known in rows:
                held.setdefault(object_id, []).append(HeldVersion(*known))
        return held

    @staticmethod
    def _write_plan(db, collection_id: str, plan: WritePlan) -> None:
        for flag, object_ids in (("is_first", plan.demote_first), ("is_last", plan.demote_last)):
            db.executemany(f"UPDATE objects SET {flag} = 0 WHERE collection_id = ? AND object_id = ? AND {flag} = 1",
                           [(collection_id, object_id) for object_id in object_ids])
        db.executemany(
            "INSERT INTO objects (collection_id, object_id, type, version, version_key, spec_version, date_added,"
            " is_first, is_last, content_hash, body, submitter, submitter_key, derived_from)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(collection_id, r.object_id, r.type, r.version, r.version_key, r.spec_version, r.date_added,
              int(row.is_first), int(row.is_last), r.content_hash, r.body, r.submitter, r.submitter_key,
              r.derived_from) for row in plan.rows for r in [row.record]])
        if plan.rows:
            db.execute(
                "INSERT INTO collection_clock (collection_id, last_date_added) VALUES (?, ?) "
                "ON CONFLICT (collection_id) DO UPDATE SET last_date_added = MAX(last_date_added, excluded.last_date_added)",
                (collection_id, plan.clock))

    def begin_reading(self) -> None:
        db = self._connection()
        self._local.data_version = db.execute("PRAGMA data_version").fetchone()[0]

    def end_reading(self) -> None:
        self._local.data_version = None

    def _state(self, db: sqlite3.Connection) -> State:
        """The store's state as this connection sees it (page_cache.py): as it was at
        `begin_reading`, or now, and this connection's own writes since."""
        data_version = getattr(self._local, "data_version", None)
        if data_version is None:
            data_version = db.execute("PRAGMA data_version").fetchone()[0]
        return data_version, db.total_changes

    def query(self, query: ObjectQuery) -> Page:
        db = self._connection()
        if db.in_transaction:  # inside a write: what that transaction sees, never kept
            return self._read_page(db, query)
        state = self._state(db)
        page = self._local.pages.get(state, query)
        if page is None:
            page = self._read_page(db, query)
            self._local.pages.put(state, query, page)
        return page

    @staticmethod
    def _read_page(db: sqlite3.Connection, query: ObjectQuery) -> Page:
        columns = _COLUMNS + (", body" if query.with_body else "")
        where, params = _where(query)
        rows = db.execute(f"SELECT {columns} FROM {_source(query)} WHERE {where} ORDER BY date_added LIMIT ?",
                          (*params, query.limit + 1))
        return take_page((StoredVersion(*row) for row in rows), query)

    def object_versions(self, collection_id: str, object_id: str) -> list[VersionRecord]:
        rows = self._connection().execute(
            f"SELECT {_RECORD_COLUMNS} FROM objects INDEXED BY objects_by_id WHERE collection_id = ? AND object_id = ?"
            " ORDER BY version_key", (collection_id, object_id))
        return [_version_record(row) for row in rows]

    def recent_versions(self, collection_id: str, limit: int, before: int | None = None,
                        since: int | None = None, with_body: bool = True) -> list[StoredVersion]:
        # The partial index of latest versions, walked backwards from `before`.
        rows = self._connection().execute(
            f"SELECT {_COLUMNS}{', body' if with_body else ''} FROM objects INDEXED BY objects_last_by_date"
            " WHERE collection_id = ? AND is_last = 1 AND date_added < ? AND date_added > ?"
            " ORDER BY date_added DESC LIMIT ?",
            (collection_id, _NEVER if before is None else before, -1 if since is None else since, limit)).fetchall()
        return [StoredVersion(*row) for row in rows]

    def last_added(self, collection_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(collection_ids), _IDS_PER_SELECT):
            chunk = collection_ids[start:start + _IDS_PER_SELECT]
            found.update(self._connection().execute(
                f"SELECT collection_id, last_date_added FROM collection_clock WHERE collection_id IN ({_marks(chunk)})",
                chunk).fetchall())
        return found

    def object_exists(self, collection_id: str, object_id: str) -> bool:
        row = self._connection().execute(
            "SELECT 1 FROM objects WHERE collection_id = ? AND object_id = ? LIMIT 1",
            (collection_id, object_id)).fetchone()
        return row is not None

    def delete_versions(self, collection_id: str, object_id: str,
                        versions: VersionFilter, spec_versions: tuple[str, ...],
                        audit_for: Callable[[int], AuditEvent] | None = None) -> int:
        query = ObjectQuery(collection_id=collection_id, limit=0, object_id=object_id,
                            versions=versions, spec_versions=spec_versions)
        where, params = _where(query)
        with self._write() as db:
            deleted = db.execute(f"DELETE FROM {_source(query)} WHERE {where}", params).rowcount
            if deleted:
                self._refresh_first_and_last(db, collection_id, object_id)
                if audit_for is not None:
                    _append_to_trail(db, [audit_for(deleted)])
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

    def purge_statuses(self, created_before: int) -> int:
        with self._write() as db:
            return db.execute("DELETE FROM statuses WHERE created < ?", (created_before,)).rowcount

    # -- keys --------------------------------------------------------------------
    def add_key(self, record: ApiKeyRecord) -> None:
        with self._write() as db:
            db.execute(f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", astuple(record))

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        db = self._connection()
        if getattr(self._local, "data_version", None) is None or db.in_transaction:
            return self._read_key(db, key_id)  # outside a request's reads: looked up each time
        state = self._state(db)
        record = self._local.keys.get(state, key_id)
        if record is None:
            record = self._read_key(db, key_id)
            if record is not None:  # a made-up key id is not kept: it must not push out the keys in use
                self._local.keys.put(state, key_id, record)
        return record

    @staticmethod
    def _read_key(db: sqlite3.Connection, key_id: str) -> ApiKeyRecord | None:
        row = db.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
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

    # -- portal sessions -----------------------------------------------------------
    def add_portal_session(self, session: PortalSession) -> None:
        with self._write() as db:
            db.execute(f"INSERT INTO portal_sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       astuple(session))

    def get_portal_session(self, token_hash: str) -> PortalSession | None:
        row = self._connection().execute(
            f"SELECT {_SESSION_COLUMNS} FROM portal_sessions WHERE token_hash = ?", (token_hash,)).fetchone()
        return PortalSession(*row) if row else None

    def touch_portal_session(self, token_hash: str, at: int) -> None:
        with self._write() as db:
            db.execute("UPDATE portal_sessions SET last_seen = MAX(last_seen, ?) WHERE token_hash = ?",
                       (at, token_hash))

    def end_portal_session(self, token_hash: str, at: int) -> None:
        with self._write() as db:
            db.execute("UPDATE portal_sessions SET ended = COALESCE(ended, ?) WHERE token_hash = ?", (at, token_hash))

    def last_portal_visit(self, key_id: str) -> int | None:
        return self._connection().execute(
            "SELECT MAX(last_seen) FROM portal_sessions WHERE key_id = ?", (key_id,)).fetchone()[0]

    # -- rate limits ---------------------------------------------------------------
    def spend_rate(self, spends: dict[str, tuple[int, int]], now: int) -> dict[str, int]:
        if not any(cost for _, cost in spends.values()):  # only reading: no write lock, no commit
            db = self._connection()
            held = {bucket: db.execute("SELECT tat FROM rate_state WHERE bucket = ?", (bucket,)).fetchone()
                    for bucket in spends}
            return {bucket: max(row[0] if row else 0, spends[bucket][0]) for bucket, row in held.items()}
        with self._write() as db:
            times = {}
            for bucket, (since, cost) in spends.items():
                (times[bucket],) = db.execute(
                    "INSERT INTO rate_state (bucket, tat) VALUES (?1, ?2 + ?3) "
                    "ON CONFLICT (bucket) DO UPDATE SET tat = MAX(tat, ?2) + ?3 RETURNING tat",
                    (bucket, since, cost)).fetchone()
            db.execute("DELETE FROM rate_state WHERE tat < ?", (now,))  # spent long enough ago to be worth nothing
        return times

    # -- audit trail -------------------------------------------------------------
    def record_audit(self, event: AuditEvent) -> None:
        self.record_audit_batch([event])

    def record_audit_batch(self, events: list[AuditEvent]) -> None:
        with self._write() as db:
            _append_to_trail(db, events)

    def record_audit_counts(self, events: list[AuditEvent]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO audit_counts (minute, client, operator_id, key_id, status, at, method, path,"
                " collection_id, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                " (minute, client, operator_id, key_id, status) DO UPDATE SET count = count + excluded.count",
                [(e.at // MINUTE, e.client, e.operator_id or "", e.key_id or "", e.status, e.at, e.method, e.path,
                  e.collection_id, e.count) for e in events])

    def query_audit_log(self, operator_id: str | None, since: int | None, failures_only: bool,
                        limit: int) -> tuple[list[AuditEvent], int]:
        where, params = _audit_where(operator_id, since, failures_only, "operator_id IS NULL")
        db = self._connection()
        rows = db.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE {where} ORDER BY at DESC, seq DESC LIMIT ?",
                          (*params, limit)).fetchall()
        (total,) = db.execute(f"SELECT COUNT(*) FROM audit_log WHERE {where}", params).fetchone()
        return [AuditEvent(*row) for row in rows], total

    def query_audit_counts(self, operator_id: str | None, since: int | None, failures_only: bool,
                           limit: int) -> tuple[list[AuditEvent], int]:
        where, params = _audit_where(operator_id, since, failures_only, "operator_id = ''")
        db = self._connection()
        rows = db.execute(
            f"SELECT {_AUDIT_COLUMNS}, count FROM audit_counts WHERE {where} ORDER BY at DESC, rowid DESC LIMIT ?",
            (*params, limit)).fetchall()
        (total,) = db.execute(f"SELECT COUNT(*) FROM audit_counts WHERE {where}", params).fetchone()
        return [AuditEvent(at, method, path, status, client, operator or None, key or None, collection, objects, count)
                for at, method, path, status, client, operator, key, collection, objects, count in rows], total

    # -- copying a whole store ---------------------------------------------------
    def collection_ids(self) -> list[str]:
        rows = self._connection().execute("SELECT collection_id FROM collection_clock ORDER BY collection_id")
        return [row[0] for row in rows]

    def export_versions(self, collection_id: str, after_position: int | None, limit: int) -> list[VersionRecord]:
        rows = self._connection().execute(
            f"SELECT {_RECORD_COLUMNS} FROM objects WHERE collection_id = ? AND date_added > ?"
            " ORDER BY date_added LIMIT ?", (collection_id, after_position or 0, limit))
        return [_version_record(row) for row in rows]

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

    # -- compliance records (taxii_server/compliance) ------------------------------------
    def record_deliveries(self, pages: list[DeliveredPage], polls: list[Poll]) -> None:
        with self._write() as db:
            db.executemany("INSERT INTO compliance_delivered_pages (operator_id, collection_id, delivered_at, versions)"
                           " VALUES (?, ?, ?, ?)", [(*page[:3], orjson.dumps(page.versions)) for page in pages])
            db.executemany(
                "INSERT INTO compliance_polls (operator_id, collection_id, at) VALUES (?, ?, ?)"
                " ON CONFLICT DO UPDATE SET at = MAX(at, excluded.at)",
                [(p.operator_id, p.collection_id, p.at) for p in polls])

    def compact_deliveries(self, max_pages: int) -> int:
        with self._write() as db:
            pages = db.execute("SELECT seq, operator_id, collection_id, delivered_at, versions"
                               " FROM compliance_delivered_pages ORDER BY seq LIMIT ?", (max_pages,)).fetchall()
            if not pages:
                return 0
            db.executemany(
                f"INSERT INTO compliance_deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)"
                " ON CONFLICT DO UPDATE SET delivered_at = excluded.delivered_at"
                " WHERE excluded.delivered_at < delivered_at",
                [(operator_id, collection_id, date_added, object_id, version, delivered_at)
                 for _, operator_id, collection_id, delivered_at, versions in pages
                 for date_added, object_id, version in orjson.loads(versions)])
            db.execute("DELETE FROM compliance_delivered_pages WHERE seq <= ?", (pages[-1][0],))
        return len(pages)

    def deliveries(self, collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                   since: int | None, after: tuple[str, str, int] | None, limit: int) -> list[Delivery]:
        where, params = _delivery_filter(collection_ids, operator_ids, since, seek=after is not None)
        if after is not None:
            where += " AND (operator_id, collection_id, date_added) > (?, ?, ?)"
            params += list(after)
        rows = self._connection().execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM compliance_deliveries WHERE {where}"
            " ORDER BY operator_id, collection_id, date_added LIMIT ?", (*params, limit))
        return [Delivery(*row) for row in rows]

    def delivery_counts(self, collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                        since: int | None, after: tuple[str, int] | None, limit: int) -> list[DeliveryCount]:
        where, params = _delivery_filter(collection_ids, operator_ids, since)
        if after is not None:
            where += " AND (collection_id, date_added) > (?, ?)"
            params += list(after)
        rows = self._connection().execute(
            "SELECT collection_id, date_added, MIN(object_id), MIN(version), COUNT(*), COUNT(acknowledged_at),"
            f" MIN(delivered_at) FROM compliance_deliveries WHERE {where} GROUP BY collection_id, date_added"
            " ORDER BY collection_id, date_added LIMIT ?", (*params, limit))
        return [DeliveryCount(*row) for row in rows]

    def has_delivery(self, operator_id: str, object_id: str, collection_ids: tuple[str, ...], before: int) -> bool:
        db = self._connection()
        return any(db.execute(
            f"SELECT 1 FROM compliance_deliveries WHERE operator_id = ? AND collection_id = ?"
            f" AND date_added IN ({_VERSIONS_OF_OBJECT}) AND delivered_at <= ? LIMIT 1",
            (operator_id, collection_id, collection_id, object_id, before)).fetchone() for collection_id in collection_ids)

    def mark_acknowledged(self, operator_id: str, object_id: str, collection_ids: tuple[str, ...], at: int) -> int:
        with self._write() as db:
            return sum(db.execute(
                "UPDATE compliance_deliveries SET acknowledged_at = ? WHERE operator_id = ? AND collection_id = ?"
                f" AND date_added IN ({_VERSIONS_OF_OBJECT}) AND delivered_at <= ?"
                " AND (acknowledged_at IS NULL OR acknowledged_at > ?)",
                (at, operator_id, collection_id, collection_id, object_id, at, at)).rowcount
                for collection_id in collection_ids)

    def save_acknowledgement(self, ack: Acknowledgement) -> None:
        with self._write() as db:
            db.execute(
                f"INSERT INTO compliance_acks ({_ACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET ack_version = excluded.ack_version, value = excluded.value,"
                " status = excluded.status, settled = excluded.settled, acked_at = MIN(acked_at, excluded.acked_at)",
                astuple(ack))

    def acknowledgements(self, since: int | None = None, unsettled_only: bool = False) -> list[Acknowledgement]:
        clauses, params = ["acked_at >= ?"], [since or 0]
        if unsettled_only:
            clauses.append("settled = 0")
        rows = self._connection().execute(
            f"SELECT {_ACK_COLUMNS} FROM compliance_acks WHERE {' AND '.join(clauses)} ORDER BY acked_at", params)
        return [Acknowledgement(*row[:-1], settled=bool(row[-1])) for row in rows]

    def save_sighting(self, record: SightingRecord) -> None:
        with self._write() as db:
            db.execute(
                f"INSERT INTO compliance_sightings ({_SIGHTING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET version = excluded.version, version_key = excluded.version_key,"
                " indicator_id = excluded.indicator_id,"
                " count = excluded.count, first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
                " received_at = excluded.received_at WHERE excluded.version_key > version_key", astuple(record))

    def sightings(self) -> list[SightingRecord]:
        rows = self._connection().execute(f"SELECT {_SIGHTING_COLUMNS} FROM compliance_sightings")
        return [SightingRecord(*row) for row in rows]

    def save_false_positive(self, record: FalsePositive) -> None:
        with self._write() as db:
            db.execute(f"INSERT OR IGNORE INTO compliance_false_positives ({_FALSE_POSITIVE_COLUMNS})"
                       " VALUES (?, ?, ?, ?, ?)", astuple(record))

    def false_positives(self) -> list[FalsePositive]:
        rows = self._connection().execute(f"SELECT {_FALSE_POSITIVE_COLUMNS} FROM compliance_false_positives")
        return [FalsePositive(*row) for row in rows]

    def last_polls(self) -> list[Poll]:
        rows = self._connection().execute("SELECT operator_id, collection_id, at FROM compliance_polls")
        return [Poll(*row) for row in rows]

    def undelivered(self, collection_id: str, operator_ids: tuple[str, ...],
                    added_since: int) -> dict[str, tuple[int, int | None]]:
        # Set differences in Python: one read of the latest versions, then one key-range read per
        # operator, instead of one key look-up per latest version and operator.
        db = self._connection()
        latest = [row[0] for row in db.execute(
            "SELECT date_added FROM objects WHERE collection_id = ? AND is_last = 1 AND date_added >= ?"
            " ORDER BY date_added", (collection_id, added_since))]
        return {operator_id: _missing(latest, {row[0] for row in db.execute(
            "SELECT date_added FROM compliance_deliveries WHERE operator_id = ? AND collection_id = ?"
            " AND date_added >= ?", (operator_id, collection_id, added_since))}) for operator_id in operator_ids}

    def oldest_after_last_delivered(self, collection_id: str, operator_ids: tuple[str, ...],
                                    added_since: int) -> dict[str, int]:
        if not operator_ids:
            return {}
        db = self._connection()
        pending = newest_sent(db.execute(
            "SELECT operator_id, versions FROM compliance_delivered_pages WHERE collection_id = ?"
            f" AND operator_id IN ({_marks(operator_ids)})", (collection_id, *operator_ids)), operator_ids)
        oldest = {}
        for operator_id in operator_ids:
            (delivered,) = db.execute("SELECT MAX(date_added) FROM compliance_deliveries"
                                      " WHERE operator_id = ? AND collection_id = ?",
                                      (operator_id, collection_id)).fetchone()
            frontier = max(delivered or 0, pending.get(operator_id, 0), added_since - 1)
            (first,) = db.execute("SELECT MIN(date_added) FROM objects WHERE collection_id = ? AND is_last = 1"
                                  " AND date_added > ?", (collection_id, frontier)).fetchone()
            if first is not None:
                oldest[operator_id] = first
        return oldest

    def unacknowledged_versions(self, collection_ids: tuple[str, ...]) -> dict[str, int]:
        if not collection_ids:
            return {}
        rows = self._connection().execute(
            "SELECT operator_id, COUNT(*) FROM compliance_deliveries"
            f" WHERE collection_id IN ({_marks(collection_ids)}) AND acknowledged_at IS NULL GROUP BY operator_id",
            collection_ids)
        return dict(rows.fetchall())

    def compliance_cursor(self, collection_id: str) -> int:
        row = self._connection().execute("SELECT position FROM compliance_cursors WHERE collection_id = ?",
                                         (collection_id,)).fetchone()
        return row[0] if row else 0

    def advance_compliance_cursor(self, collection_id: str, position: int) -> None:
        with self._write() as db:
            db.execute("INSERT INTO compliance_cursors (collection_id, position) VALUES (?, ?)"
                       " ON CONFLICT DO UPDATE SET position = MAX(position, excluded.position)",
                       (collection_id, position))

    def purge_compliance(self, before: int) -> int:
        with self._write() as db:
            return sum(db.execute(f"DELETE FROM {table} WHERE {column} < ?", (before,)).rowcount
                       for table, column in _COMPLIANCE_TIMES)


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

_SESSION_COLUMNS = "token_hash, operator_id, key_id, created, last_seen, previous_visit, ended"
# Past every date_added: the upper bound of a walk that starts at the newest version.
_NEVER = 2**63 - 1
_AUDIT_COLUMNS = "at, method, path, status, client, operator_id, key_id, collection_id, objects"
MINUTE = 60_000_000


def _append_to_trail(db, events: list[AuditEvent]) -> None:
    db.executemany(f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(e.at, e.method, e.path, e.status, e.client, e.operator_id, e.key_id, e.collection_id,
                     e.objects) for e in events])


def _busy_or(exc: sqlite3.OperationalError) -> Exception:
    """StoreBusy for a lock that was not granted in time; the error itself otherwise."""
    message = str(exc).lower()
    return StoreBusy(str(exc)) if "locked" in message or "busy" in message else exc


def _audit_where(operator_id: str | None, since: int | None, failures_only: bool, anonymous: str) -> tuple[str, list]:
    clauses, params = ["1"], []
    if operator_id is not None:
        clauses.append("operator_id = ?")
        params.append(operator_id)
    if since is not None:
        clauses.append("at >= ?")
        params.append(since)
    if failures_only:  # failed authentications: anonymous and refused (401, or 429 once an address is limited)
        clauses.append(f"{anonymous} AND status IN (401, 429)")
    return " AND ".join(clauses), params
_CLIENT_CERT_COLUMNS = "fingerprint, operator_id, subject, created, expires, revoked, label"
_RECORD_COLUMNS = ("object_id, type, version, version_key, spec_version, date_added, content_hash, body,"
                   " submitter, submitter_key, derived_from")
_FEED_STATE_COLUMNS = "cursor, changed_at, rules, removals"
_FEED_ENTRY_COLUMNS = ("kind, value, indicator_id, date_added, valid_from, valid_until, confidence, tlp,"
                       " indicator_types, name, held")
_KEY_COLUMNS = "key_id, operator_id, secret_hash, created, expires, revoked, last_used, label"


def _version_record(row) -> VersionRecord:
    object_id, kind, version, version_key, spec_version, date_added, content_hash, body, *submission = row
    return VersionRecord(object_id, kind, version, version_key, spec_version, date_added, bytes(content_hash),
                         bytes(body), *submission)


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


# -- compliance records ------------------------------------------------------------

COMPLIANCE_SCHEMA = """
-- One row per object version first sent to an operator. Keyed by the version's date_added,
-- so that what one operator is sent lands next to what it was sent before (pollers read in
-- date_added order): a page's deliveries are written into one or two pages of the table.
-- There is deliberately no other index: every one would be written on every delivery.
-- Filled from compliance_delivered_pages (one row per page served, appended on the read
-- path) by compact_deliveries, off the read path.
CREATE TABLE IF NOT EXISTS compliance_delivered_pages (
    seq           INTEGER PRIMARY KEY,
    operator_id   TEXT    NOT NULL,
    collection_id TEXT    NOT NULL,
    delivered_at  INTEGER NOT NULL,
    versions      BLOB    NOT NULL  -- JSON: [[date_added, object id, version], ...]
);
CREATE TABLE IF NOT EXISTS compliance_deliveries (
    operator_id     TEXT    NOT NULL,
    collection_id   TEXT    NOT NULL,
    date_added      INTEGER NOT NULL,
    object_id       TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    delivered_at    INTEGER NOT NULL,
    acknowledged_at INTEGER,
    PRIMARY KEY (operator_id, collection_id, date_added)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS compliance_polls (
    operator_id   TEXT    NOT NULL,
    collection_id TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (operator_id, collection_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS compliance_acks (
    operator_id   TEXT    NOT NULL,
    object_id     TEXT    NOT NULL,
    ack_id        TEXT    NOT NULL,
    ack_version   TEXT    NOT NULL,
    collection_id TEXT    NOT NULL,
    acked_at      INTEGER NOT NULL,
    value         TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    settled       INTEGER NOT NULL,
    PRIMARY KEY (operator_id, object_id, ack_id)
);
CREATE INDEX IF NOT EXISTS compliance_acks_by_time ON compliance_acks (acked_at);
CREATE TABLE IF NOT EXISTS compliance_sightings (
    operator_id  TEXT    NOT NULL,
    sighting_id  TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    version_key  INTEGER NOT NULL,
    indicator_id TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (operator_id, sighting_id)
);
CREATE TABLE IF NOT EXISTS compliance_false_positives (
    operator_id  TEXT    NOT NULL,
    opinion_id   TEXT    NOT NULL,
    indicator_id TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    reported_at  INTEGER NOT NULL,
    PRIMARY KEY (operator_id, opinion_id, indicator_id)
);
-- How far each licensee's private collection has been read for acknowledgements and sightings.
CREATE TABLE IF NOT EXISTS compliance_cursors (
    collection_id TEXT PRIMARY KEY,
    position      INTEGER NOT NULL
);
"""
_DELIVERY_COLUMNS = "operator_id, collection_id, date_added, object_id, version, delivered_at, acknowledged_at"
# The date_added of every version of one object in one collection (parameters: collection, object).
_VERSIONS_OF_OBJECT = "SELECT date_added FROM objects INDEXED BY objects_by_id WHERE collection_id = ? AND object_id = ?"
_ACK_COLUMNS = "operator_id, object_id, ack_id, ack_version, collection_id, acked_at, value, status, settled"
_SIGHTING_COLUMNS = "operator_id, sighting_id, version, version_key, indicator_id, count, first_seen, last_seen, received_at"
_FALSE_POSITIVE_COLUMNS = "operator_id, opinion_id, indicator_id, value, reported_at"
_COMPLIANCE_TIMES = (("compliance_deliveries", "delivered_at"), ("compliance_delivered_pages", "delivered_at"), ("compliance_acks", "acked_at"),
                     ("compliance_sightings", "received_at"), ("compliance_false_positives", "reported_at"))


def _missing(latest: list[int], delivered: set[int]) -> tuple[int, int | None]:
    """(how many of `latest`, in ascending order, are not in `delivered`; the first of them)."""
    missing = [date_added for date_added in latest if date_added not in delivered]
    return len(missing), missing[0] if missing else None


def _delivery_filter(collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                     since: int | None, seek: bool = False) -> tuple[str, list]:
    """The WHERE clause for these filters. With `seek` (a page after a cursor), the IN terms
    are kept from the key (`+column`), so that the page starts where the cursor points
    instead of at the start of every operator's range."""
    clauses, params = ["1"], []
    for column, values in (("collection_id", collection_ids), ("operator_id", operator_ids)):
        if values is not None:
            clauses.append(f"{'+' if seek else ''}{column} IN ({_marks(values)})")
            params += list(values)
    if since is not None:
        clauses.append("delivered_at >= ?")
        params.append(since)
    return " AND ".join(clauses), params
