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
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path

from ..timestamps import now_micros
from .base import (AddOutcome, ApiKeyRecord, AuditEvent, ClientCertRecord, NewVersion, ObjectQuery, Page, PortalSession,
                   StatusMaker, StatusRecord, Store, StoredVersion, VersionFilter, VersionRecord)
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
                        versions: VersionFilter, spec_versions: tuple[str, ...]) -> int:
        query = ObjectQuery(collection_id=collection_id, limit=0, object_id=object_id,
                            versions=versions, spec_versions=spec_versions)
        where, params = _where(query)
        with self._write() as db:
            deleted = db.execute(f"DELETE FROM {_source(query)} WHERE {where}", params).rowcount
            if deleted:
                self._refresh_first_and_last(db, collection_id, object_id)
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


_SESSION_COLUMNS = "token_hash, operator_id, key_id, created, last_seen, previous_visit, ended"
# Past every date_added: the upper bound of a walk that starts at the newest version.
_NEVER = 2**63 - 1
_AUDIT_COLUMNS = "at, method, path, status, client, operator_id, key_id, collection_id, objects"
_CLIENT_CERT_COLUMNS = "fingerprint, operator_id, subject, created, expires, revoked, label"
_RECORD_COLUMNS = "object_id, type, version, version_key, spec_version, date_added, content_hash, body"
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
