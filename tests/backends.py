"""The storage backends the shared suites run against, by name.

- sqlite: always.
- mongomock: always; mongomock keeps its data inside one process and cannot run
  transactions, so the store serialises writes in-process instead, and cases
  that need another process or a transaction are marked as needing a real server.
- mongodb: a real MongoDB replica set, only when TAXII_TEST_MONGODB_URI names one,
  e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0. Each test gets a database of
  its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import mongomock
import pytest

from taxii_server.storage import register_backend
from taxii_server.storage.mongodb import MongoStore

REAL_MONGODB = os.environ.get("TAXII_TEST_MONGODB_URI")
NEEDS_REAL_SERVER = ("needs a real storage server shared between processes (mongomock lives in one process "
                     "and has no transactions): set TAXII_TEST_MONGODB_URI to run it")

_mongomock_clients: dict[str, mongomock.MongoClient] = {}


def _open_mongomock(url: str) -> MongoStore:
    """`mongomock://server/database`: every store opened on one `server` shares its data, as on a real server."""
    parts = urlsplit(url)
    client = _mongomock_clients.setdefault(parts.netloc, mongomock.MongoClient())
    return MongoStore(lambda: client, parts.path.lstrip("/"), transactions=False)


register_backend("mongomock", _open_mongomock)


def _sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'taxii.sqlite3'}"


def _mongomock_url(tmp_path) -> str:
    return f"mongomock://suite/taxii_{uuid.uuid4().hex[:12]}"


def _real_mongodb_url(tmp_path) -> str:
    parts = urlsplit(REAL_MONGODB)
    return urlunsplit(parts._replace(path=f"/taxii_test_{uuid.uuid4().hex[:12]}"))


BACKENDS = {"sqlite": _sqlite_url, "mongomock": _mongomock_url}
if REAL_MONGODB:
    BACKENDS["mongodb"] = _real_mongodb_url


def shared_between_processes(url: str) -> bool:
    return not url.startswith("mongomock:")


def require_shared_store(url: str) -> None:
    """Skip, saying why, a case that needs several processes on one store."""
    if not shared_between_processes(url):
        pytest.skip(NEEDS_REAL_SERVER)


def discard(url: str) -> None:
    """Drop a per-test MongoDB database (SQLite files go with pytest's tmp_path)."""
    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    if parts.scheme == "mongomock":
        if parts.netloc in _mongomock_clients:
            _mongomock_clients[parts.netloc].drop_database(database)
    elif parts.scheme.startswith("mongodb"):
        import pymongo
        with pymongo.MongoClient(url) as client:
            client.drop_database(database)


def require_sqlite(url: str, why: str) -> None:
    """Skip, saying why, a case about SQLite's own files or features."""
    if not url.startswith("sqlite:"):
        pytest.skip(f"SQLite only: {why}")
