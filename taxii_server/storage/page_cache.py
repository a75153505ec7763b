"""Pages read again while the SQLite store has not changed, answered from memory.

SOC tools poll on a timer, and every tool that is up to date asks the same question
of a collection: the page after its last `date_added`. Between two writes each such
poll would read the same rows again. The SQLite backend keeps, for each connection
(one per thread), the last pages that connection read, and answers a repeated query
from them while nothing in the store has changed:

- SQLite's `PRAGMA data_version` changes whenever another connection, in this
  process or any other, commits to the file;
- the connection's own `total_changes` grows with every row it writes itself.

A page is kept under the pair of both, so any commit anywhere (a new object, a
deletion, a retention purge, an audit record) empties the cache before the next
page is read: an answer from the cache is the answer the store would give. Only a
query is saved, never authentication, rights, the rate limit or the audit record,
which every request still goes through.

Memory is bounded per connection: at most MAX_PAGES pages and MAX_BYTES bytes of
bodies, and a page with more than MAX_PAGE_BYTES of bodies is not kept.
"""

from __future__ import annotations

from collections import OrderedDict

from .base import ObjectQuery, Page

MAX_PAGES = 32
MAX_BYTES = 4 * 1024 * 1024
MAX_PAGE_BYTES = 1024 * 1024


class PageCache:
    """One connection's recently read pages, valid for one state of the store."""

    def __init__(self) -> None:
        self._pages: OrderedDict[ObjectQuery, tuple[Page, int]] = OrderedDict()
        self._state: tuple[int, int] | None = None
        self._bytes = 0

    def get(self, state: tuple[int, int], query: ObjectQuery) -> Page | None:
        if state != self._state:
            self._empty(state)
            return None
        kept = self._pages.get(query)
        if kept is None:
            return None
        self._pages.move_to_end(query)
        page = kept[0]
        return Page(list(page.records), page.more)  # the caller's own list

    def put(self, state: tuple[int, int], query: ObjectQuery, page: Page) -> None:
        if state != self._state:
            self._empty(state)
        size = sum(len(record.body) for record in page.records if record.body is not None)
        if size > MAX_PAGE_BYTES or query in self._pages:
            return
        self._pages[query] = (Page(list(page.records), page.more), size)
        self._bytes += size
        while len(self._pages) > MAX_PAGES or self._bytes > MAX_BYTES:
            _, (_, evicted) = self._pages.popitem(last=False)
            self._bytes -= evicted

    def _empty(self, state: tuple[int, int]) -> None:
        self._pages.clear()
        self._bytes = 0
        self._state = state
