"""Storage backends, chosen by URL:

    sqlite:///relative.db, sqlite:////absolute.db      the embedded default
    mongodb://host1,host2/taxii?replicaSet=rs0         a MongoDB replica set
    mongodb+srv://cluster.example.net/taxii            the same, found through DNS

`register_backend` adds a scheme: the test suite uses it for mongomock.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from .base import Store


class StorageError(Exception):
    """The store cannot be opened or used as configured; the message is for operators and names no password."""


class StorageURLError(StorageError, ValueError):
    pass


def _open_sqlite(url: str) -> Store:
    from .sqlite import SQLiteStore
    return SQLiteStore(sqlite_path(url))


def _open_mongodb(url: str) -> Store:
    from .mongodb import MongoStore
    return MongoStore.connect(url)


_BACKENDS: dict[str, Callable[[str], Store]] = {
    "sqlite": _open_sqlite,
    "mongodb": _open_mongodb,
    "mongodb+srv": _open_mongodb,
}


def register_backend(scheme: str, opener: Callable[[str], Store]) -> None:
    _BACKENDS[scheme] = opener


def open_store(url: str) -> Store:
    opener = _BACKENDS.get(urlsplit(url).scheme)
    if opener is None:
        raise StorageURLError(f"unsupported storage URL {redacted(url)!r}: expected sqlite:///PATH or mongodb://HOSTS/DATABASE")
    return opener(url)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def sqlite_path(url: str) -> str:
    """`sqlite:///data/x.db` -> `data/x.db`; `sqlite:////tmp/x.db` -> `/tmp/x.db`; `sqlite:///:memory:`."""
    path = url[len("sqlite://"):]
    if not path.startswith("/") or len(path) < 2:
        raise StorageURLError(f"storage URL {url!r} has no path: write sqlite:///relative.db or sqlite:////absolute.db")
    return path[1:]
