"""Storage backends, chosen by URL: `sqlite:///relative.db`, `sqlite:////absolute.db`."""

from __future__ import annotations

from urllib.parse import urlparse

from .base import Store


class StorageURLError(ValueError):
    pass


def open_store(url: str) -> Store:
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from .sqlite import SQLiteStore
        return SQLiteStore(sqlite_path(url))
    raise StorageURLError(f"unsupported storage URL {url!r}: expected sqlite:///PATH")


def sqlite_path(url: str) -> str:
    """`sqlite:///data/x.db` -> `data/x.db`; `sqlite:////tmp/x.db` -> `/tmp/x.db`; `sqlite:///:memory:`."""
    path = url[len("sqlite://"):]
    if not path.startswith("/") or len(path) < 2:
        raise StorageURLError(f"storage URL {url!r} has no path: write sqlite:///relative.db or sqlite:////absolute.db")
    return path[1:]
