"""What a SQLite connection read while the store has not changed, answered from memory.

SOC tools poll on a timer, and every tool that is up to date asks the same question
of a collection: the page after its last `date_added`; each of its requests also
looks up the same API key. Between two writes those reads would find the same rows
again. The SQLite backend keeps, for each connection (one per thread), the last
pages and key records that connection read, and answers a repeated read from them
while nothing in the store has changed:

- SQLite's `PRAGMA data_version` changes whenever another connection, in this
  process or any other, commits to the file;
- the connection's own `total_changes` grows with every row it writes itself.

What is kept is kept under the pair of both, so any commit anywhere (a new object, a
deletion, a revoked key, an audit record) empties the cache before the next read: an
answer from the cache is the answer the store would give. Only reads are saved,
never the checks made of what they return: a key's expiry and revocation are judged
on every request, rights, the rate limit and the audit record too.

Memory is bounded per connection: a count of entries and a total of bytes, and an
entry larger than a quarter of that total is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from .base import Page

MAX_PAGES = 32
MAX_BYTES = 4 * 1024 * 1024
MAX_PAGE_BYTES = MAX_BYTES // 4
MAX_KEYS = 256

State = tuple[int, int]  # (PRAGMA data_version, the connection's total_changes)


class ReadCache:
    """One connection's recent reads of one kind, valid for one state of the store."""

    def __init__(self, max_entries: int, max_bytes: int = 0) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._state: State | None = None
        self._bytes = 0

    def get(self, state: State, key: Hashable):
        """What was kept for `key` in this state; None when nothing was."""
        if state != self._state:
            self._empty(state)
            return None
        kept = self._entries.get(key)
        if kept is None:
            return None
        self._entries.move_to_end(key)
        return kept[0]

    def put(self, state: State, key: Hashable, value: object, size: int = 0) -> None:
        if state != self._state:
            self._empty(state)
        if size > self.max_bytes // 4 or key in self._entries:
            return
        self._entries[key] = (value, size)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted

    def _empty(self, state: State) -> None:
        self._entries.clear()
        self._bytes = 0
        self._state = state


class PageCache(ReadCache):
    """Pages by their query. A page is given out as a new Page with a list of its own;
    its records are shared, and read-only by convention (base.StoredVersion)."""

    def __init__(self) -> None:
        super().__init__(MAX_PAGES, MAX_BYTES)

    def get(self, state: State, key: Hashable) -> Page | None:
        page = super().get(state, key)
        return None if page is None else Page(list(page.records), page.more)

    def put(self, state: State, key: Hashable, page: Page) -> None:  # weighed by its bodies
        size = sum(len(record.body) for record in page.records if record.body is not None)
        super().put(state, key, Page(list(page.records), page.more), size)


class KeyCache(ReadCache):
    """API key records by key id, counted not weighed (only keys found: a made-up id is
    looked up each time, and cannot push out the keys in use)."""

    def __init__(self) -> None:
        super().__init__(MAX_KEYS)
