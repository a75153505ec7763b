"""Files and folders of the server's own, readable by the server's user only.

The SQLite store holds every licensee's reports and the key hashes; the
secret file holds the key to those hashes. They are created mode 0600, and
their folders 0700, whatever the umask: SQLite gives the database's WAL and
shared-memory files the mode of the database itself. Files that already
exist keep their mode; `taxii-server check` warns about any that others can
read or write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600


def private_folder(path: Path) -> None:
    """Create `path` and its missing parents, each mode 0700; an existing folder is left as it is."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_FOLDER)
        except FileExistsError:  # another worker made it a moment ago
            continue
        os.chmod(folder, PRIVATE_FOLDER)  # exactly 0700, whatever the umask took away


def private_file(path: Path) -> None:
    """Create `path` empty, mode 0600, unless it exists."""
    private_folder(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)


def open_to_others(paths: list[Path]) -> list[str]:
    """A warning for each existing path that users other than its owner may use."""
    warnings = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            wanted = PRIVATE_FOLDER if path.is_dir() else PRIVATE_FILE
            warnings.append(f"{path} has mode {mode:04o}: other users may read it; chmod {wanted:o} {path}")
    return warnings


def server_files(storage_url: str, secret_file: Path | None) -> list[Path]:
    """The files and folders holding the store (SQLite) and the secret."""
    from .storage import sqlite_path

    paths = []
    if storage_url.startswith("sqlite:") and sqlite_path(storage_url) != ":memory:":
        database = Path(sqlite_path(storage_url))
        paths += [database.parent, database] + [database.with_name(database.name + suffix)
                                                for suffix in ("-wal", "-shm", "-journal")]
    if secret_file is not None:
        paths += [secret_file.parent, secret_file]
    return list(dict.fromkeys(paths))
