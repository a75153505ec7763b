"""Backups of the SQLite store while it serves, and restoring one.

`backup` uses SQLite's online backup API over one read transaction: the copy is
the store as it was at one instant. The store runs in WAL mode, where a reader
never blocks a writer, so the server keeps storing objects during the copy;
all a long copy delays is the checkpoint that folds the WAL back into the
database file. The copy is made in a single step on purpose: SQLite restarts a
stepped backup from the first page whenever another connection writes between
two steps, so under steady writes a stepped copy might never finish.

The copy is written beside its destination, checked (`PRAGMA quick_check`),
turned into one self-contained file (rollback journal instead of WAL) and only
then given its name, readable by its owner alone (0600): it holds the audit
trail and the key hashes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

# What makes a database file a store of this server.
STORE_TABLES = frozenset({"objects", "collection_clock", "statuses", "api_keys", "audit_log"})


class BackupError(Exception):
    """The backup or the restore cannot be made; the message says why."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    seconds: float


def backup_sqlite(store_path: str, destination: Path) -> BackupReport:
    """Copy the live store at `store_path` into the new file `destination`, consistently."""
    if not Path(store_path).is_file():
        raise BackupError(f"{store_path}: no such store")
    if destination.exists():
        raise BackupError(f"{destination} exists: a backup never overwrites a file")
    started = time.monotonic()
    draft = _private_file_beside(destination)
    try:
        with closing(sqlite3.connect(store_path, timeout=30)) as source, closing(sqlite3.connect(draft)) as copy:
            source.backup(copy, pages=-1)  # one step, one snapshot: see the module's docstring
            _check(copy, draft)
            copy.execute("PRAGMA journal_mode=DELETE")  # one file, nothing beside it
        os.link(draft, destination)  # fails, rather than overwrite, if the name was taken meanwhile
    except FileExistsError:
        raise BackupError(f"{destination} exists: a backup never overwrites a file") from None
    finally:
        draft.unlink(missing_ok=True)
    return BackupReport(destination, destination.stat().st_size, time.monotonic() - started)


def restore_sqlite(backup: Path, store_path: str) -> None:
    """Replace the whole store at `store_path` with the backup's content, in one transaction.

    Done through the backup API as well, into the store's own database: its
    locks and its WAL stay SQLite's business, and no reader ever sees half of it."""
    if not backup.is_file():
        raise BackupError(f"{backup}: no such file")
    with closing(sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)) as source:
        _check(source, backup)
        target_path = Path(store_path)
        if not target_path.exists():
            target_path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(target_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with closing(sqlite3.connect(store_path, timeout=30)) as target:
            source.backup(target, pages=-1)


def _check(db: sqlite3.Connection, path: Path) -> None:
    try:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a usable SQLite database: {exc}") from None
    if verdict != "ok":
        raise BackupError(f"{path}: damaged: {verdict}")
    if not STORE_TABLES <= tables:
        raise BackupError(f"{path}: not a taxii-server store (missing {', '.join(sorted(STORE_TABLES - tables))})")


def _private_file_beside(destination: Path) -> Path:
    """A new empty file next to `destination`, mode 0600 from its creation on."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    draft = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    os.close(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return draft
