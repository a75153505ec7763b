"""How a page is cut from the versions that follow a position: shared by every backend.

A backend reads up to `limit + 1` versions in `date_added` order, one more
than the page holds, to tell whether more follow. When that extra version
shares a millisecond with the page's last one, the page would end inside a
millisecond; it ends instead at the last millisecond boundary within it.
Then the page's X-TAXII-Date-Added-Last, cut to the millisecond by a client,
still names a place where everything before is on the page and nothing after
is (timestamps.parse_added_after). Only a page lying wholly inside one
millisecond (one write of more than `limit` versions) has no such boundary:
it is kept whole, and its `next` token continues it exactly.
"""

from __future__ import annotations

from ..timestamps import millisecond_of
from .base import Page, StoredVersion


def page_from(versions: list[StoredVersion], limit: int) -> Page:
    """The page of at most `limit` versions from `versions` (read with `limit + 1`)."""
    if len(versions) <= limit:
        return Page(records=versions, more=False)
    records = versions[:limit]
    unfinished = millisecond_of(versions[limit].date_added)
    end = len(records)
    while end and millisecond_of(records[end - 1].date_added) == unfinished:
        end -= 1
    return Page(records=records[:end] if end else records, more=True)
